import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { JiffyError } from '../errors.js';
import { MediaTypes } from '../images/types.js';
import { basicHeader, fetchBearerToken, parseChallenge } from './auth.js';
import type { Credentials } from './credentials.js';

/** What a manifest GET returns: the exact bytes (their digest is the manifest's identity). */
export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

export interface RegistryClientOptions {
  /** `host[:port]` as in the image reference. */
  registry: string;
  repository: string;
  credentials?: Credentials;
  /** Plain http even for non-loopback hosts (loopback registries always use http). */
  insecure?: boolean;
}

export const MANIFEST_ACCEPT = [
  MediaTypes.ociIndex,
  MediaTypes.dockerManifestList,
  MediaTypes.ociManifest,
  MediaTypes.dockerManifest,
].join(', ');

/**
 * A client for one repository on one registry, speaking the OCI distribution API v2. It answers
 * 401 challenges itself: `Basic` → retry with credentials, `Bearer` → fetch a token from the
 * realm for `repository:<name>:pull[,push]` and retry; tokens are cached per scope.
 */
export class RegistryClient {
  readonly base: string;
  private readonly tokens = new Map<string, string>();
  private basicAuth = false;

  constructor(readonly opts: RegistryClientOptions) {
    this.base = `${useHttp(opts.registry, opts.insecure) ? 'http' : 'https'}://${opts.registry}/v2/`;
  }

  /** `repository:<name>:pull` or `…:pull,push`. */
  scope(push: boolean): string {
    return `repository:${this.opts.repository}:${push ? 'pull,push' : 'pull'}`;
  }

  /**
   * One HTTP request with auth handled. `body` is a factory because a streamed body cannot be
   * replayed after a 401. Relative `path` is resolved under /v2/; absolute URLs (Location
   * headers) are used as they are.
   */
  async request(
    method: string,
    urlOrPath: string,
    init: { headers?: Record<string, string>; body?: () => Buffer | Readable | Promise<Buffer | Readable>; push?: boolean; redirect?: RequestRedirect } = {},
  ): Promise<Response> {
    const url = new URL(urlOrPath, this.base);
    const scope = this.scope(init.push ?? false);
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { ...init.headers };
      const auth = this.authHeader(scope);
      if (auth) headers.authorization = auth;
      const res = await this.send(method, url, headers, await init.body?.(), init.redirect);
      if (res.status !== 401 || attempt > 0) return res;
      await res.body?.cancel();
      await this.answerChallenge(res, scope);
    }
  }

  private authHeader(scope: string): string | undefined {
    const token = this.tokens.get(scope);
    if (token) return `Bearer ${token}`;
    if (this.basicAuth && this.opts.credentials) return basicHeader(this.opts.credentials);
    return undefined;
  }

  private async send(method: string, url: URL, headers: Record<string, string>, body?: Buffer | Readable, redirect?: RequestRedirect): Promise<Response> {
    try {
      const init: RequestInit & { duplex?: 'half' } = { method, headers, redirect: redirect ?? 'follow' };
      if (body instanceof Readable) {
        init.body = Readable.toWeb(body) as ReadableStream;
        init.duplex = 'half';
      } else if (body) {
        init.body = body as unknown as BodyInit; // a Buffer is a Uint8Array, which fetch sends as is
      }
      return await fetch(url, init);
    } catch (e) {
      throw new JiffyError('unavailable', `cannot reach registry ${this.opts.registry} (${method} ${url.pathname}): ${causeText(e)}; is it running, and is the address right? For a plain-http registry pass --insecure`, { cause: e });
    }
  }

  private async answerChallenge(res: Response, scope: string): Promise<void> {
    const ch = parseChallenge(res.headers.get('www-authenticate') ?? '');
    const who = this.opts.registry;
    if (ch?.scheme === 'bearer') {
      this.tokens.set(scope, await fetchBearerToken(ch, scope, this.opts.credentials, who));
      return;
    }
    if (ch?.scheme === 'basic' && this.opts.credentials && !this.basicAuth) {
      this.basicAuth = true;
      return;
    }
    throw new JiffyError('unauthenticated', `registry ${who} requires authentication${this.opts.credentials ? ` and refused user "${this.opts.credentials.username}"` : ''}; run \`jiffy login ${who}\` or pass --user/--password`);
  }

  /** GET a manifest by tag or digest; its digest is computed from the bytes (and checked against a digest reference). */
  async getManifest(reference: string): Promise<FetchedManifest> {
    const res = await this.request('GET', `${this.opts.repository}/manifests/${reference}`, { headers: { accept: MANIFEST_ACCEPT } });
    if (res.status === 404) {
      await res.body?.cancel();
      throw new JiffyError('not_found', `manifest ${this.opts.registry}/${this.opts.repository}:${reference} not found; check the name and tag (jiffy push it first?)`);
    }
    await this.ensureOk(res, `GET manifest ${reference}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    const digest = `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
    const claimed = res.headers.get('docker-content-digest');
    if ((reference.startsWith('sha256:') && reference !== digest) || (claimed?.startsWith('sha256:') && claimed !== digest)) {
      throw new JiffyError('data_loss', `digest mismatch for manifest ${reference}: content hashes to ${digest}; the registry is corrupt or was tampered with — nothing was stored`);
    }
    const mediaType = manifestMediaType(bytes, res.headers.get('content-type'));
    return { bytes, mediaType, digest };
  }

  /** A blob's body as a stream (redirects to storage backends are followed). */
  async getBlob(digest: string): Promise<Readable> {
    const res = await this.request('GET', `${this.opts.repository}/blobs/${digest}`);
    if (res.status === 404) {
      await res.body?.cancel();
      throw new JiffyError('not_found', `blob ${digest} not found in ${this.opts.registry}/${this.opts.repository}; the image is incomplete on the registry`);
    }
    await this.ensureOk(res, `GET blob ${digest}`);
    if (!res.body) throw new JiffyError('unavailable', `registry sent no body for blob ${digest}`);
    return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
  }

  /** HEAD a blob: true when the registry has it in this repository. */
  async hasBlob(digest: string): Promise<boolean> {
    const res = await this.request('HEAD', `${this.opts.repository}/blobs/${digest}`, { push: true });
    if (res.status === 404) return false;
    await this.ensureOk(res, `HEAD blob ${digest}`);
    return true;
  }

  /** Throws a JiffyError for a non-2xx response, with the registry's error text. */
  async ensureOk(res: Response, what: string): Promise<void> {
    if (res.ok) return;
    const text = await res.text().catch(() => '');
    const code = res.status === 401 ? 'unauthenticated' : res.status === 403 ? 'permission_denied' : res.status === 404 ? 'not_found' : 'unavailable';
    throw new JiffyError(code, `registry ${this.opts.registry}: ${what} failed with HTTP ${res.status}${text ? `: ${registryErrorText(text)}` : ''}`);
  }
}

/** True for loopback registries (and --insecure): they are spoken to over plain http. */
export function useHttp(registry: string, insecure?: boolean): boolean {
  if (insecure) return true;
  const host = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** The manifest's own `mediaType` field, else the Content-Type header. */
function manifestMediaType(bytes: Buffer, contentType: string | null): string {
  try {
    const v = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; schemaVersion?: number; manifests?: unknown };
    if (v.schemaVersion === 1) {
      throw new JiffyError('failed_precondition', 'the registry serves a Docker schema 1 manifest, which Jiffy does not support; push the image again with a current tool');
    }
    if (v.mediaType) return v.mediaType;
    if (v.manifests) return MediaTypes.ociIndex;
  } catch (e) {
    if (e instanceof JiffyError) throw e;
    throw new JiffyError('data_loss', `the registry returned a manifest that is not JSON: ${(e as Error).message}`);
  }
  return (contentType ?? MediaTypes.ociManifest).split(';')[0].trim();
}

function registryErrorText(text: string): string {
  try {
    const v = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    if (v.errors?.length) return v.errors.map((e) => `${e.code ?? ''} ${e.message ?? ''}`.trim()).join('; ');
  } catch {
    // not the registry's JSON error format: show the raw text
  }
  return text.slice(0, 300);
}

function causeText(e: unknown): string {
  const c = (e as { cause?: { code?: string; message?: string } }).cause;
  return c?.code ?? c?.message ?? (e as Error).message;
}
