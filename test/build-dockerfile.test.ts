import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { hasCode } from '../src/errors.js';
import { repoRoot } from '../src/paths.js';
import { buildImage, type BuildOptions } from '../src/build/builder.js';
import { runStepHooks } from '../src/build/run-step.js';
import { findInImage, storeWithRuntimeImages } from './support/runtime-images.js';

const run = promisify(execFile);
let rt: Awaited<ReturnType<typeof storeWithRuntimeImages>>;
let ctx: string;

const DOCKERFILE = `# a small app
FROM busybox:latest
ARG VERSION=1.2
COPY app/ /srv/app/
COPY notes.txt /tmp/
ADD vendor.tar.gz /opt/vendor
ENV APP_HOME=/srv/app \\
    APP_VERSION=$VERSION
WORKDIR $APP_HOME
LABEL org.example.version=$APP_VERSION
USER 65534
EXPOSE 8080
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat index.txt"]
`;

before(async () => {
  rt = await storeWithRuntimeImages(['busybox'], 'build');
  ctx = path.join(rt.root, 'ctx');
  await fs.mkdir(path.join(ctx, 'app', 'lib'), { recursive: true });
  await fs.writeFile(path.join(ctx, 'app', 'index.txt'), 'index\n');
  await fs.writeFile(path.join(ctx, 'app', 'lib', 'util.txt'), 'util\n');
  await fs.writeFile(path.join(ctx, 'app', 'debug.log'), 'ignored\n');
  await fs.writeFile(path.join(ctx, 'notes.txt'), 'notes\n');
  await fs.writeFile(path.join(ctx, '.dockerignore'), '**/*.log\n');
  const vendor = path.join(rt.root, 'vendor-src');
  await fs.mkdir(path.join(vendor, 'pkg'), { recursive: true });
  await fs.writeFile(path.join(vendor, 'pkg', 'mod.txt'), 'vendored\n');
  await run('tar', ['-czf', path.join(ctx, 'vendor.tar.gz'), '-C', vendor, 'pkg']);
  await fs.writeFile(path.join(ctx, 'Dockerfile'), DOCKERFILE);
});
after(async () => {
  await rt?.cleanup();
});

const build = (over: Partial<BuildOptions> = {}) => buildImage(rt.store, { contextDir: ctx, dockerfile: DOCKERFILE, tags: ['app:1'], ...over });

test('builds layers and config from the Dockerfile subset', async () => {
  const { image, steps } = await build();
  assert.equal(steps.length, 12);
  assert.deepEqual(image.refs, ['app:1']);
  assert.equal(image.layers.length, 2 + 3, 'busybox layers + COPY, COPY, ADD (WORKDIR /srv/app exists already)');
  const c = image.config.config!;
  assert.ok(c.Env?.includes('APP_HOME=/srv/app'));
  assert.ok(c.Env?.includes('APP_VERSION=1.2'), 'ARG default expanded into ENV');
  assert.equal(c.WorkingDir, '/srv/app');
  assert.equal(c.Labels?.['org.example.version'], '1.2');
  assert.equal(c.User, '65534');
  assert.deepEqual(c.ExposedPorts, { '8080/tcp': {} });
  assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c']);
  assert.deepEqual(c.Cmd, ['cat index.txt']);

  const history = image.config.history!.slice(-10);
  assert.deepEqual(history.filter((h) => !h.empty_layer).map((h) => h.created_by), [
    'COPY app/ /srv/app/ # buildkit',
    'COPY notes.txt /tmp/ # buildkit',
    'ADD vendor.tar.gz /opt/vendor # buildkit',
  ]);
  assert.ok(history.find((h) => h.created_by === 'WORKDIR /srv/app')?.empty_layer);
  assert.ok(history.find((h) => h.created_by === 'ENV APP_HOME=/srv/app APP_VERSION=1.2')?.empty_layer);

  assert.equal(await fs.readFile((await findInImage(image, 'srv/app/lib/util.txt'))!, 'utf8'), 'util\n');
  assert.equal(await findInImage(image, 'srv/app/debug.log'), undefined, '.dockerignore honoured');
  assert.equal(await fs.readFile((await findInImage(image, 'opt/vendor/pkg/mod.txt'))!, 'utf8'), 'vendored\n', 'ADD extracted the tar.gz');
  // The COPY into /tmp carries /tmp with the mode the image already has, not 0755.
  const notesLayer = image.layers[3].dir;
  assert.equal((await fs.stat(path.join(notesLayer, 'tmp'))).mode & 0o7777, 0o1777);
});

test('an unchanged rebuild is all cache hits with the same image id; a changed file rebuilds from its step', async () => {
  const first = await build();
  const again = await build();
  assert.equal(again.image.id, first.image.id);
  assert.ok(again.steps.slice(1).every((s) => s.cached || s.text.startsWith('ARG')), 'every step after FROM cached');
  await fs.writeFile(path.join(ctx, 'notes.txt'), 'changed notes\n');
  try {
    const changed = await build({ tags: ['app:2'] });
    assert.notEqual(changed.image.id, first.image.id);
    const flags = Object.fromEntries(changed.steps.map((s) => [s.text.split('\n')[0], s.cached]));
    assert.equal(flags['COPY app/ /srv/app/'], true);
    assert.equal(flags['COPY notes.txt /tmp/'], false);
    assert.equal(flags['USER 65534'], false, 'steps after a changed one rebuild');
  } finally {
    await fs.writeFile(path.join(ctx, 'notes.txt'), 'notes\n');
  }
});

test('bad steps fail clearly and tag nothing', async () => {
  const fails = async (dockerfile: string, code: string, re: RegExp) =>
    assert.rejects(build({ dockerfile, tags: ['bad:1'] }), (e) => hasCode(e, code as never) && re.test((e as Error).message));
  await fails('FROM busybox:latest\nADD https://example.com/x.tgz /x/\n', 'invalid_argument', /remote source .* not supported/);
  await fails('FROM busybox:latest\nCOPY ../etc/passwd /x\n', 'invalid_argument', /outside the build context/);
  await fails('FROM busybox:latest\nCOPY missing.txt /x\n', 'not_found', /missing.txt not found/);
  await fails('FROM no-such-base:1\nCOPY notes.txt /x\n', 'not_found', /FROM no-such-base:1/);
  await assert.rejects(rt.store.resolve('bad:1'), (e) => hasCode(e, 'not_found'));
});

test('RUN executes in a container and commits its changes (files and whiteouts) as a layer', async () => {
  const dockerfile = 'FROM busybox:latest\nWORKDIR /work\nRUN echo built > out.txt && rm /etc/group && id -u\nCMD ["cat", "/work/out.txt"]\n';
  const lines: string[] = [];
  const { image } = await build({ dockerfile, tags: ['run:1'], ...runStepHooks(rt.store), log: (l) => lines.push(l) });
  assert.ok(lines.includes('0'), `the command's output is in the build log: ${lines.join(' | ')}`);
  const top = image.layers[image.layers.length - 1].dir;
  assert.equal(await fs.readFile(path.join(top, 'work', 'out.txt'), 'utf8'), 'built\n');
  const wh = await fs.stat(path.join(top, 'etc', 'group'));
  assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'the deleted /etc/group is an overlay whiteout in the unpacked layer');
  assert.match(image.config.history!.at(-2)!.created_by!, /^RUN \/bin\/sh -c echo built/);
});

test('jiffy build CLI prints steps and tags the image', async () => {
  const out = await new Promise<{ code: number; text: string }>((resolve) => {
    const child = spawn(process.execPath, [path.join(repoRoot(), 'bin', 'jiffy'), 'build', '-t', 'cli:1', '-f', path.join(ctx, 'Dockerfile'), ctx], { env: { ...process.env, JIFFY_ROOT: rt.root } });
    let text = '';
    child.stdout.on('data', (c: Buffer) => (text += c));
    child.stderr.on('data', (c: Buffer) => (text += c));
    child.on('close', (code) => resolve({ code: code ?? -1, text }));
  });
  assert.equal(out.code, 0, out.text);
  assert.match(out.text, /Step 4\/12 : COPY notes.txt \/tmp\//);
  assert.match(out.text, /Successfully tagged cli:1/);
  assert.equal((await rt.store.resolve('cli:1')).id, (await rt.store.resolve('app:1')).id);
});
