// Files for the media tests, made in code (no binary fixtures): a valid PNG of any size, an
// SVG, text, and an executable's first bytes under an image's name. Also the browser-side
// steps that hand files to a page as a paste or a drop would.
import { deflateSync } from 'node:zlib';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A `width` × `height` RGB PNG: a gradient with the colour `[r, g, b]` mixed in. */
export function png(width, height, [r, g, b] = [200, 60, 40]) {
  const rows = [];
  for (let y = 0; y < height; y += 1) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x += 1) {
      row[1 + x * 3] = (r + x) & 0xff;
      row[2 + x * 3] = (g + y) & 0xff;
      row[3 + x * 3] = b;
    }
    rows.push(row);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A harmless SVG (the server takes it only when `image/svg+xml` is among its media types). */
export const SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><rect width="40" height="40" fill="#3a6"/></svg>';

/** The first bytes of a Linux executable (sniffed as application/octet-stream, never accepted). */
export function elf() {
  return Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(120, 0x41)]);
}

/**
 * In the page: builds a DataTransfer holding a file (`bytes` as an array of numbers) and
 * dispatches `kind` ('paste' on `selector`, or 'drop' after 'dragenter'/'dragover').
 */
export async function deliverFile(page, kind, selector, { name, type, bytes }) {
  await page.evaluate(({ kind, selector, name, type, bytes }) => {
    const data = new DataTransfer();
    data.items.add(new File([new Uint8Array(bytes)], name, { type }));
    const target = document.querySelector(selector);
    if (kind === 'paste') {
      target.focus();
      target.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
      return;
    }
    for (const type of ['dragenter', 'dragover', 'drop']) {
      target.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
    }
  }, { kind, selector, name, type, bytes: [...bytes] });
}

/** The media types the server accepts by default, plus SVG (for the tests that show one is never an image). */
export const WITH_SVG = [
  'image/jpeg', 'image/png', 'image/gif', 'image/webp', 'image/svg+xml', 'application/pdf', 'text/plain',
  'audio/mpeg', 'audio/ogg', 'audio/opus', 'video/mp4', 'video/webm',
].join(',');
