import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hasCode } from '../errors.js';
import { expandVars, parseDockerfile, splitWords } from './dockerfile.js';
import { dockerignoreMatcher } from './dockerignore.js';
import { globToRegExp } from './copy-sources.js';

test('parses continuations, comments, JSON and shell forms', () => {
  const ins = parseDockerfile(`# syntax comment
FROM busybox:latest
# a comment
COPY --chown=1000:1000 a.txt \\
  # comment inside a continuation
  b.txt /app/
RUN echo one && \\
    echo two
CMD ["node", "index.js"]
ENTRYPOINT /bin/sh -c 'exec app'
ENV A=1 B="two words"
ENV LEGACY some value
LABEL "com.example.k"="v" other=x
WORKDIR /srv
USER nobody
ARG V=3
EXPOSE 8080 53/udp
`);
  assert.deepEqual(ins.map((i) => i.kind), ['FROM', 'COPY', 'RUN', 'CMD', 'ENTRYPOINT', 'ENV', 'ENV', 'LABEL', 'WORKDIR', 'USER', 'ARG', 'EXPOSE']);
  const copy = ins[1] as Extract<(typeof ins)[number], { kind: 'COPY' | 'ADD' }>;
  assert.deepEqual(copy.sources, ['a.txt', 'b.txt']);
  assert.equal(copy.dest, '/app/');
  assert.equal(copy.chown, '1000:1000');
  assert.equal(copy.line, 4);
  const runIns = ins[2] as Extract<(typeof ins)[number], { kind: 'RUN' }>;
  assert.deepEqual(runIns.command, ['/bin/sh', '-c', 'echo one &&      echo two']);
  assert.deepEqual((ins[3] as { args: string[] }).args, ['node', 'index.js']);
  assert.deepEqual((ins[4] as { args: string[] }).args, ['/bin/sh', '-c', "/bin/sh -c 'exec app'"]);
  assert.deepEqual((ins[5] as { pairs: unknown }).pairs, [['A', '1'], ['B', 'two words']]);
  assert.deepEqual((ins[6] as { pairs: unknown }).pairs, [['LEGACY', 'some value']]);
  assert.deepEqual((ins[7] as { pairs: unknown }).pairs, [['com.example.k', 'v'], ['other', 'x']]);
  assert.deepEqual((ins[11] as { ports: string[] }).ports, ['8080', '53/udp']);
});

test('refuses what it does not support, naming the line', () => {
  const bad = (text: string, re: RegExp) =>
    assert.throws(() => parseDockerfile(text), (e) => hasCode(e, 'invalid_argument') && re.test((e as Error).message));
  bad('', /no instructions/);
  bad('COPY a /b', /first instruction must be FROM/);
  bad('FROM a AS b\nFROM c', /multi-stage/);
  bad('FROM a\nHEALTHCHECK CMD true', /line 2: unknown or unsupported instruction "HEALTHCHECK"/);
  bad('FROM a\nCOPY --from=x a /b', /--from/);
  bad('FROM a\nCOPY onlyone', /source and a destination/);
  bad('FROM a\nENV', /ENV needs/);
});

test('variable expansion and word splitting follow Docker', () => {
  const env = { A: 'x', EMPTY: '' };
  assert.equal(expandVars('$A/${A}/${B:-def}/${A:+alt}/${EMPTY:-d}/\\$A', env), 'x/x/def/alt/d/$A');
  assert.deepEqual(splitWords(`a "b c" 'd e' f\\ g`), ['a', 'b c', 'd e', 'f g']);
});

test('.dockerignore: directories, globs, ! exceptions, last match wins', () => {
  const ig = dockerignoreMatcher('# comment\nnode_modules\n*.log\n!keep.log\nsecret/**\n');
  assert.equal(ig('node_modules'), true);
  assert.equal(ig('node_modules/x/y.js'), true);
  assert.equal(ig('a.log'), true);
  assert.equal(ig('keep.log'), false);
  assert.equal(ig('secret/a/b'), true);
  assert.equal(ig('src/index.js'), false);
  assert.equal(globToRegExp('src/*.ts').test('src/a.ts'), true);
  assert.equal(globToRegExp('src/*.ts').test('src/x/a.ts'), false);
});
