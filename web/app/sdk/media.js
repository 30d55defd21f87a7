// Media over HTTP: uploads with progress (abortable), the hash pre-check, and downloads as Blobs.
// The token goes only in the Authorization header, never in a URL, so a page shows a downloaded
// file through a blob: URL. No DOM access: uploads use XMLHttpRequest where it exists (browsers,
// for upload progress) and fetch elsewhere (node).

import { BanterError, httpError } from './util.js';

/**
 * Files up to this size are hashed (SHA-256, in memory) before an upload and checked with
 * `GET /v1/media/{id}/info`: a file the caller may read already is sent without uploading it
 * again. Larger files are uploaded without the check (hashing them would hold them in memory).
 */
export const HASH_PRECHECK_MAX_BYTES = 64 * 1024 * 1024;

/** Image types a client may show as an image (anything else, SVG included, is a file). */
export const IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp']);

/** Lower-case hex SHA-256 of a Blob, or null where crypto.subtle is missing (insecure origin). */
export async function sha256Hex(blob) {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return null;
  const digest = await subtle.digest('SHA-256', await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The attachment `kind` a file described by `info` (MediaInfo) is sent as: an image only when
 * the server thumbnailed one of IMAGE_TYPES, audio and video by type, anything else a file.
 */
export function kindFor(info) {
  const type = String(info?.type ?? '');
  if (IMAGE_TYPES.has(type) && info.thumbnail) return 'image';
  if (type.startsWith('audio/')) return 'audio';
  if (type.startsWith('video/')) return 'video';
  return 'file';
}

export class Media {
  #host;

  /**
   * @param {{baseUrl: string, token: () => string|undefined, fetch: Function,
   *          refused: (token: string, code: string) => void}} host  `refused` is told of a 401
   */
  constructor(host) {
    this.#host = host;
  }

  #token() {
    const token = this.#host.token();
    if (!token) throw new BanterError('unauthorized', 'not logged in');
    return token;
  }

  #fail(token, err) {
    if (err.status === 401 && (err.code === 'unauthorized' || err.code === 'token_expired')) {
      this.#host.refused(token, err.code);
    }
    return err;
  }

  /**
   * Uploads `blob` as `name`. `onProgress(sent, total)` follows the upload (browsers only);
   * aborting `signal` rejects with BanterError 'aborted'.
   * @returns {Promise<object>} MediaInfo {id, type, size, name, width?, height?, thumbnail, color?, used_bytes, quota_bytes}
   */
  upload(blob, { name = blob?.name || 'file', onProgress, signal } = {}) {
    const token = this.#token();
    const url = `${this.#host.baseUrl}/v1/media?${new URLSearchParams({ name })}`;
    if (signal?.aborted) return Promise.reject(new BanterError('aborted', 'the upload was cancelled'));
    if (typeof globalThis.XMLHttpRequest !== 'function') return this.#uploadByFetch(url, token, blob, signal);
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', url);
      xhr.setRequestHeader('authorization', `Bearer ${token}`);
      xhr.upload.onprogress = (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : blob.size);
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress?.(blob.size, blob.size);
          try { resolve(JSON.parse(xhr.responseText)); } catch { reject(new BanterError('internal', 'unreadable answer')); }
        } else {
          reject(this.#fail(token, httpError(xhr.status, xhr.responseText, xhr.getResponseHeader('retry-after'))));
        }
      };
      xhr.onerror = () => reject(new BanterError('network', 'cannot reach the server'));
      xhr.ontimeout = () => reject(new BanterError('timeout', 'the upload took too long'));
      xhr.onabort = () => reject(new BanterError('aborted', 'the upload was cancelled'));
      signal?.addEventListener('abort', () => xhr.abort(), { once: true });
      xhr.send(blob);
    });
  }

  async #uploadByFetch(url, token, blob, signal) {
    let res;
    try {
      res = await this.#host.fetch(url, {
        method: 'POST', headers: { authorization: `Bearer ${token}` }, body: blob, signal,
      });
    } catch (err) {
      if (signal?.aborted) throw new BanterError('aborted', 'the upload was cancelled');
      throw new BanterError('network', `cannot reach the server: ${err?.message ?? err}`);
    }
    const text = await res.text().catch(() => '');
    if (!res.ok) throw this.#fail(token, httpError(res.status, text, res.headers.get('retry-after')));
    return JSON.parse(text);
  }

  /** The hash pre-check: MediaInfo of a file the caller may read already, else null (unknown_media). */
  async info(id) {
    try {
      const res = await this.#get(`/v1/media/${encodeURIComponent(id)}/info`);
      return JSON.parse(await res.text());
    } catch (err) {
      if (err?.code === 'unknown_media') return null;
      throw err;
    }
  }

  /**
   * Makes `blob` available to send: files up to HASH_PRECHECK_MAX_BYTES are hashed and, when
   * the server answers the pre-check, not uploaded at all (`reused: true` on the result).
   * Options as for upload. @returns {Promise<object>} MediaInfo
   */
  async prepare(blob, options = {}) {
    if (blob.size > 0 && blob.size <= HASH_PRECHECK_MAX_BYTES) {
      const id = await sha256Hex(blob).catch(() => null);
      if (options.signal?.aborted) throw new BanterError('aborted', 'the upload was cancelled');
      const known = id ? await this.info(id).catch(() => null) : null;
      if (known) {
        options.onProgress?.(blob.size, blob.size);
        return { ...known, name: options.name ?? blob.name ?? known.name, reused: true };
      }
    }
    return this.upload(blob, options);
  }

  /** Downloads a file (or its thumbnail) with the token. @returns {Promise<Blob>} */
  async download(id, { thumbnail = false, signal } = {}) {
    const res = await this.#get(`/v1/media/${encodeURIComponent(id)}${thumbnail ? '/thumbnail' : ''}`, signal);
    return res.blob();
  }

  async #get(path, signal) {
    const token = this.#token();
    let res;
    try {
      res = await this.#host.fetch(`${this.#host.baseUrl}${path}`, { headers: { authorization: `Bearer ${token}` }, signal });
    } catch (err) {
      if (signal?.aborted) throw new BanterError('aborted', 'the download was cancelled');
      throw new BanterError('network', `cannot reach the server: ${err?.message ?? err}`);
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      throw this.#fail(token, httpError(res.status, text, res.headers.get('retry-after')));
    }
    return res;
  }
}
