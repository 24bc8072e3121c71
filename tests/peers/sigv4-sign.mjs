// Reference signatures for tests/unit/test_sigv4.c's differential test:
// signs each request of a JSON file with AWS's own signer,
// @smithy/signature-v4 (what @aws-sdk/client-s3 uses), header form and
// presigned URL, and prints one JSON array of results.
//   node tests/peers/sigv4-sign.mjs cases.json
// Each case: { method, host, raw_path, s3, query: [[k, v], ...],
//   headers: [[k, v], ...], body_b64, unsigned, when, region, service,
//   ak, sk, token, expires }.
// raw_path is the decoded path; it goes on the wire with each segment
// escaped by escapeUri, as the SDK's serialisers do for S3 keys.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { SignatureV4, getCanonicalQuery } from '@smithy/signature-v4';
import { escapeUri } from '@smithy/core/protocols';

class Sha256 {
  constructor(k) { this.h = k ? crypto.createHmac('sha256', k) : crypto.createHash('sha256'); }
  update(d) { this.h.update(d); }
  async digest() { return new Uint8Array(this.h.digest()); }
}

const cases = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const out = [];
for (const c of cases) {
  const path = c.raw_path.split('/').map(escapeUri).join('/');
  const query = {};
  for (const [k, v] of c.query) query[k] = k in query ? [].concat(query[k], v) : v;
  const headers = {};
  for (const [k, v] of c.headers) headers[k] = v;
  const body = Buffer.from(c.body_b64, 'base64');
  const signer = new SignatureV4({
    service: c.service, region: c.region, sha256: Sha256,
    uriEscapePath: !c.s3, applyChecksum: c.s3,
    credentials: { accessKeyId: c.ak, secretAccessKey: c.sk, ...(c.token ? { sessionToken: c.token } : {}) },
  });
  const when = new Date(c.when * 1000);
  const hreq = { method: c.method, protocol: 'https:', hostname: c.host, path, query,
                 headers: { ...headers, host: c.host }, body };
  if (c.unsigned) hreq.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
  const signed = await signer.sign(hreq, { signingDate: when });

  // Presign: the caller's x-amz-* headers stay signed headers (not
  // hoisted), and the payload is UNSIGNED-PAYLOAD without a header or a
  // query parameter for it, as AWS's presigned-URL documentation shows.
  const preq = { method: c.method, protocol: 'https:', hostname: c.host, path, query,
                 headers: { ...headers, host: c.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } };
  const keep = new Set(Object.keys(preq.headers).map((h) => h.toLowerCase()));
  const pre = await signer.presign(preq, {
    signingDate: when, expiresIn: c.expires, unhoistableHeaders: keep,
    unsignableHeaders: new Set(['x-amz-content-sha256']),
  });
  const url = `https://${c.host}${path}?${getCanonicalQuery(pre)}&X-Amz-Signature=${pre.query['X-Amz-Signature']}`;
  out.push({ path, authorization: signed.headers.authorization, url });
}
process.stdout.write(JSON.stringify(out));
