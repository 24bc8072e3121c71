// s3rver 3.7.1 behind a SigV4-checking front, both on 127.0.0.1, for the
// S3 client's integration test (see TEST-PEERS.md section 2: s3rver alone
// accepts any V4 signature). The front recomputes each request's
// AWS4-HMAC-SHA256 signature with AWS's own signer (@smithy/signature-v4),
// checks the x-amz-content-sha256 against the body and the x-amz-date
// against the clock (15 minutes, as S3), and answers as S3 would
// (403 SignatureDoesNotMatch, 400 XAmzContentSHA256Mismatch,
// 403 RequestTimeTooSkewed, 403 AccessDenied) or forwards the request
// unchanged to s3rver. Presigned URLs are checked too, with their expiry.
// env: PORT (0: any free port), S3_DIR (s3rver's store, required),
//      BUCKETS (comma-separated, created at start), EXTRA_AK/EXTRA_SK (a
//      second key pair, e.g. a GCS HMAC key GOOG1...).
//
// For GCS with a service account (no emulator serves the XML API):
//   TOKENINFO_URL: OAuth2 bearer tokens are accepted when this endpoint
//     (the token double, gcs-token-double.mjs) knows them and their scope
//     holds devstorage.read_write; then they are forwarded unsigned.
//   GOOG_SA_EMAIL, GOOG_SA_PUBKEY (a PEM file): GOOG4-RSA-SHA256 signed
//     URLs are checked as Cloud Storage does (canonical request, string
//     to sign, RSA-SHA256 with the service account's public key, expiry).
//
// s3rver lacks AbortMultipartUpload (405) and ListMultipartUploads (501):
// the front keeps the uploads it saw created and not completed, and
// answers those two itself (S3's XML), so a test can see an upload left
// pending.
//
// Test controls (not S3; never signed):
//   POST /__front/faults  [{"method":"PUT","match":"partNumber=2",
//     "status":500,"count":2} | {..."delay_ms":5000} | {..."reset":true}]
//     the next `count` requests whose method and path+query (substring)
//     match get that answer (after the signature check) instead of s3rver's;
//     {..."hold":true} keeps them waiting until POST /__front/release
//   GET /__front/requests  [{method, url, status}] answered so far;
//   DELETE /__front/requests clears it
//   GET /__front/uploads  the multipart uploads created and neither
//     completed nor aborted (what ListMultipartUploads answers)
//   POST /__front/config {"list_max_keys": n}  ListObjectsV2 answers pages
//     of n keys (s3rver's max-keys), to exercise continuation tokens;
//     {"uploads_age_s": s} makes pending uploads look s seconds older
//   POST /__front/temp_keys {"keys": [{AccessKeyId, SecretAccessKey, Token,
//     Expiration}]} | {"lookup": URL}  temporary credentials (STS-style,
//     as the container endpoint and IMDS hand out): accepted only with
//     their session token, x-amz-security-token (signed) or
//     X-Amz-Security-Token in a presigned URL, as S3 does: none is 403
//     InvalidAccessKeyId, another 400 InvalidToken, past Expiration 400
//     ExpiredToken. With lookup, an unknown key is looked up in URL's list
//     (aws-creds-double.mjs's GET /__double/issued) before it is refused.
//     Each logged request then also names its access key (ak).
// Prints "s3 front on 127.0.0.1:PORT" once both listen. Run with
// node --openssl-legacy-provider (s3rver's continuation tokens use DES).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { SignatureV4 } from '@smithy/signature-v4';

const require = createRequire(import.meta.url);
const S3rver = require('s3rver');
const AWSAccount = require('s3rver/lib/models/account');

const KEYS = { S3RVER: 'S3RVER' };
const TOKENINFO = process.env.TOKENINFO_URL || '';
const SA_EMAIL = process.env.GOOG_SA_EMAIL || '';
const SA_PUBKEY = process.env.GOOG_SA_PUBKEY ? fs.readFileSync(process.env.GOOG_SA_PUBKEY, 'utf8') : '';
let faults = [];
let held = []; // requests kept waiting by a "hold" fault
// list_max_keys > 0: ListObjectsV2 pages of that many keys;
// uploads_age_s: ListMultipartUploads dates uploads that much earlier
const config = { list_max_keys: 0, uploads_age_s: 0 };
const requests = [];
const temp = new Map(); // temporary AccessKeyId -> { sk, token, expires (ms) }
let tempLookup = '';
const addTemp = (list) => {
  for (const k of list) {
    if (!temp.has(k.AccessKeyId)) AWSAccount.DUMMY_ACCOUNT.createKeyPair(k.AccessKeyId, k.SecretAccessKey);
    temp.set(k.AccessKeyId, { sk: k.SecretAccessKey, token: k.Token, expires: Date.parse(k.Expiration) });
  }
};
// the temporary key ak, looked up when unknown; undefined when none
const tempKey = async (ak) => {
  if (!temp.has(ak) && tempLookup) {
    const r = await fetch(tempLookup);
    if (r.status === 200) addTemp(await r.json());
  }
  return temp.get(ak);
};
const uploads = new Map(); // uploadId -> { bucket, key, initiated }
if (process.env.EXTRA_AK) {
  KEYS[process.env.EXTRA_AK] = process.env.EXTRA_SK || '';
  AWSAccount.DUMMY_ACCOUNT.createKeyPair(process.env.EXTRA_AK, process.env.EXTRA_SK || '');
}
const buckets = (process.env.BUCKETS || '').split(',').filter(Boolean).map((name) => ({ name, configs: [] }));
const s3rver = new S3rver({ address: '127.0.0.1', port: 0, directory: process.env.S3_DIR, silent: true,
                            vhostBuckets: true, configureBuckets: buckets });
const up = await s3rver.run();

class Sha256 {
  constructor(k) { this.h = k ? crypto.createHmac('sha256', k) : crypto.createHash('sha256'); }
  update(d) { this.h.update(d); }
  async digest() { return new Uint8Array(this.h.digest()); }
}
const xmlErr = (code, msg) => `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${msg}</Message></Error>`;
const awsEnc = (x) => encodeURIComponent(x).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
const SKEW_MS = 15 * 60 * 1000;

const xmlEsc = (x) => String(x).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
// bucket and key of a path-style or virtual-hosted request
const target = (host, rawPath) => {
  const m = /^([^.:]+)\.s3[.-]/.exec(host || '');
  const segs = rawPath.split('/').slice(1).map(decodeURIComponent);
  return m ? { bucket: m[1], key: segs.join('/') } : { bucket: segs[0], key: segs.slice(1).join('/') };
};

// Cloud Storage's check of a V4 RSA signed URL (canonical-requests and
// signatures pages of the Cloud Storage docs)
const checkGoog4 = (req, rawPath, rawQuery) => {
  if (!SA_PUBKEY) return 'GOOG4-RSA-SHA256 URLs are not configured';
  const pairs = rawQuery.split('&').filter(Boolean).map((p) => {
    const i = p.indexOf('=');
    return [decodeURIComponent(i < 0 ? p : p.slice(0, i)), decodeURIComponent(i < 0 ? '' : p.slice(i + 1))];
  });
  const q = Object.fromEntries(pairs);
  if (q['X-Goog-Algorithm'] !== 'GOOG4-RSA-SHA256') return 'unsupported X-Goog-Algorithm';
  const cm = /^([^/]+)\/(\d{8})\/([^/]+)\/storage\/goog4_request$/.exec(q['X-Goog-Credential'] || '');
  if (!cm || cm[1] !== SA_EMAIL) return 'unknown credential';
  const dt = q['X-Goog-Date'] || '';
  if (!/^\d{8}T\d{6}Z$/.test(dt) || dt.slice(0, 8) !== cm[2]) return 'bad X-Goog-Date';
  const exp = +q['X-Goog-Expires'];
  if (!(exp >= 1 && exp <= 604800)) return 'X-Goog-Expires must be 1 to 604800';
  const when = Date.parse(dt.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));
  if (Date.now() > when + exp * 1000) return 'Request has expired';
  const signedNames = (q['X-Goog-SignedHeaders'] || '').split(';');
  if (!signedNames.includes('host')) return 'host is not signed';
  const canonQuery = pairs.filter(([k]) => k !== 'X-Goog-Signature')
    .map(([k, v]) => [awsEnc(k), awsEnc(v)]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`).join('&');
  const canonHeaders = signedNames.map((h) => `${h}:${String(req.headers[h] ?? '').trim()}\n`).join('');
  const path = rawPath.split('/').map((seg) => awsEnc(decodeURIComponent(seg))).join('/');
  const creq = [req.method, path, canonQuery, canonHeaders, signedNames.join(';'), 'UNSIGNED-PAYLOAD'].join('\n');
  const sts = ['GOOG4-RSA-SHA256', dt, `${cm[2]}/${cm[3]}/storage/goog4_request`,
               crypto.createHash('sha256').update(creq).digest('hex')].join('\n');
  const sig = Buffer.from(q['X-Goog-Signature'] || '', 'hex');
  if (!crypto.verify('sha256', Buffer.from(sts), SA_PUBKEY, sig)) return 'SignatureDoesNotMatch';
  return null;
};

const checkBearer = async (token) => {
  if (!TOKENINFO) return 'bearer tokens are not configured';
  const r = await fetch(`${TOKENINFO}?access_token=${encodeURIComponent(token)}`);
  if (r.status !== 200) return 'invalid token';
  const info = await r.json();
  if (!String(info.scope || '').split(' ').includes('https://www.googleapis.com/auth/devstorage.read_write'))
    return 'token lacks the devstorage.read_write scope';
  return null;
};

const server = http.createServer(async (req, res) => {
  const log = { method: req.method, url: req.url, status: 0 };
  const fail = (status, code, msg) => {
    log.status = status;
    res.writeHead(status, { 'content-type': 'application/xml' });
    res.end(xmlErr(code, msg));
  };
  const answer = (status, body, headers = {}) => {
    log.status = status;
    res.writeHead(status, { 'content-type': 'application/xml', ...headers });
    res.end(body);
  };
  if (req.url.startsWith('/__front/')) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    res.setHeader('content-type', 'application/json');
    if (req.url === '/__front/faults' && req.method === 'POST') {
      faults = JSON.parse(Buffer.concat(chunks).toString() || '[]');
      return res.end('{}');
    }
    if (req.url === '/__front/release' && req.method === 'POST') {
      const n = held.length;
      held.forEach((r) => r());
      held = [];
      return res.end(JSON.stringify({ released: n }));
    }
    if (req.url === '/__front/temp_keys' && req.method === 'POST') {
      const c = JSON.parse(Buffer.concat(chunks).toString() || '{}');
      if (c.keys) addTemp(c.keys);
      if (c.lookup !== undefined) tempLookup = c.lookup;
      return res.end(JSON.stringify({ keys: temp.size }));
    }
    if (req.url === '/__front/config' && req.method === 'POST') {
      Object.assign(config, JSON.parse(Buffer.concat(chunks).toString() || '{}'));
      return res.end('{}');
    }
    if (req.url === '/__front/uploads' && req.method === 'GET')
      return res.end(JSON.stringify([...uploads.entries()].map(([id, u]) => ({ uploadId: id, ...u }))));
    if (req.url === '/__front/requests' && req.method === 'GET') return res.end(JSON.stringify(requests));
    if (req.url === '/__front/requests' && req.method === 'DELETE') { requests.length = 0; return res.end('{}'); }
    res.statusCode = 404;
    return res.end('{}');
  }
  requests.push(log);
  try {
    const [rawPath, rawQuery = ''] = req.url.split(/\?(.*)/s);
    const query = {};
    for (const part of rawQuery.split('&').filter(Boolean)) { // '+' stays '+'
      const i = part.indexOf('=');
      const k = decodeURIComponent(i < 0 ? part : part.slice(0, i));
      const v = i < 0 ? '' : decodeURIComponent(part.slice(i + 1));
      query[k] = k in query ? [].concat(query[k], v) : v;
    }
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const payload = Buffer.concat(chunks);
    const presigned = 'X-Amz-Signature' in query;
    let ak, region, service, signed, sig, amzDate, expires;
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization || '');
    if ('X-Goog-Signature' in query) {
      const why = checkGoog4(req, rawPath, rawQuery);
      if (why) return fail(403, why === 'SignatureDoesNotMatch' ? why : 'AccessDenied', why);
      return forward(req, res, log, payload, req.url.replace(/[?&]X-Goog-[^&]*/g, '').replace(/^([^?]*)&/, '$1?'), true);
    }
    if (bearer) {
      const why = await checkBearer(bearer[1]);
      if (why) return fail(401, 'AuthenticationRequired', why);
      if (req.headers['content-md5'] &&
          req.headers['content-md5'] !== crypto.createHash('md5').update(payload).digest('base64'))
        return fail(400, 'BadDigest', 'The Content-MD5 you specified did not match what was received.');
      for (const h of Object.keys(req.headers)) if (h.startsWith('x-amz-')) return fail(400, 'InvalidArgument', `${h} with OAuth`);
      return emulate(req, res, log, payload, rawPath, rawQuery, true);
    }
    if (presigned) {
      const cm = /^([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request$/.exec(query['X-Amz-Credential'] || '');
      if (query['X-Amz-Algorithm'] !== 'AWS4-HMAC-SHA256' || !cm) return fail(403, 'AccessDenied', 'malformed presigned URL');
      [, ak, region, service] = cm;
      signed = query['X-Amz-SignedHeaders']; sig = query['X-Amz-Signature'];
      amzDate = query['X-Amz-Date']; expires = +query['X-Amz-Expires'];
      if (!(expires >= 1 && expires <= 604800)) return fail(400, 'AuthorizationQueryParametersError', 'X-Amz-Expires must be 1 to 604800');
      for (const k of Object.keys(query))
        if (/^X-Amz-(Algorithm|Credential|Date|Expires|SignedHeaders|Signature)$/.test(k)) delete query[k];
    } else {
      const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(req.headers.authorization || '');
      if (!m) return fail(403, 'AccessDenied', 'missing or malformed AWS4-HMAC-SHA256 Authorization header');
      [, ak, , region, service, signed, sig] = m;
      amzDate = req.headers['x-amz-date'];
      const ph = req.headers['x-amz-content-sha256'];
      if (ph === undefined) return fail(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
      if (ph !== 'UNSIGNED-PAYLOAD' && ph !== crypto.createHash('sha256').update(payload).digest('hex'))
        return fail(400, 'XAmzContentSHA256Mismatch', 'The provided x-amz-content-sha256 header does not match what was computed.');
      // S3 wants every x-amz-* header it is sent to be signed
      const names = signed.split(';');
      for (const h of Object.keys(req.headers))
        if (h.startsWith('x-amz-') && !names.includes(h))
          return fail(403, 'AccessDenied', `header ${h} is not signed`);
    }
    log.ak = ak;
    const tk = ak in KEYS ? undefined : await tempKey(ak);
    if (!(ak in KEYS) && !tk) return fail(403, 'InvalidAccessKeyId', 'unknown access key');
    if (tk) {
      // S3 with STS credentials: the key is nothing without its token
      const tok = presigned ? query['X-Amz-Security-Token'] : req.headers['x-amz-security-token'];
      if (tok === undefined)
        return fail(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
      if (tok !== tk.token) return fail(400, 'InvalidToken', 'The provided token is malformed or otherwise invalid.');
      if (Date.now() >= tk.expires) return fail(400, 'ExpiredToken', 'The provided token has expired.');
    }
    if (!/^\d{8}T\d{6}Z$/.test(amzDate || '')) return fail(403, 'AccessDenied', 'missing or malformed x-amz-date');
    const date = new Date(amzDate.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));
    if (presigned) {
      if (Date.now() > date.getTime() + expires * 1000) return fail(403, 'AccessDenied', 'Request has expired');
    } else if (Math.abs(Date.now() - date.getTime()) > SKEW_MS) {
      return fail(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.');
    }
    const headers = {};
    for (const h of signed.split(';')) headers[h] = req.headers[h] ?? '';
    if (!('host' in headers)) return fail(403, 'AccessDenied', 'host is not signed');
    const signer = new SignatureV4({ service, region, sha256: Sha256, uriEscapePath: service !== 's3',
                                     applyChecksum: false,
                                     credentials: { accessKeyId: ak, secretAccessKey: tk ? tk.sk : KEYS[ak] } });
    // S3's canonical URI: the path as sent, each segment decoded and encoded once
    const path = service === 's3' ? rawPath.split('/').map((seg) => awsEnc(decodeURIComponent(seg))).join('/') : rawPath;
    const request = { method: req.method, protocol: 'http:', hostname: headers.host, path, query, headers, body: payload };
    let want;
    if (presigned) {
      if (!('x-amz-content-sha256' in headers)) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      const p = await signer.presign(request, { signingDate: date, expiresIn: expires,
        unhoistableHeaders: new Set(Object.keys(request.headers)),
        unsignableHeaders: signed.includes('x-amz-content-sha256') ? undefined : new Set(['x-amz-content-sha256']) });
      want = p.query['X-Amz-Signature'];
    } else {
      const s = await signer.sign(request, { signingDate: date });
      want = /Signature=([0-9a-f]{64})/.exec(s.headers.authorization)[1];
    }
    if (want !== sig) return fail(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.');
    return emulate(req, res, log, payload, rawPath, rawQuery, false);
  } catch (e) {
    fail(500, 'InternalError', String(e && e.message));
  }
});

// after the signature check: injected faults, the two multipart calls
// s3rver lacks, then s3rver
async function emulate(req, res, log, payload, rawPath, rawQuery, unsigned) {
  const answer = (status, body) => {
    log.status = status;
    res.writeHead(status, { 'content-type': 'application/xml' });
    res.end(body);
  };
  const f = faults.find((x) => x.count > 0 && (!x.method || x.method === req.method) &&
                               (!x.match || req.url.includes(x.match)));
  if (f) {
    f.count--;
    if (f.reset) { log.status = -1; return req.socket.destroy(); }
    if (f.delay_ms) await new Promise((r) => setTimeout(r, f.delay_ms));
    if (f.hold) await new Promise((r) => held.push(r));
    if (f.status) return answer(f.status, xmlErr(f.status >= 500 ? 'InternalError' : 'InjectedFault', 'injected by the test'));
  }
  const q = new URLSearchParams(rawQuery);
  const { bucket, key } = target(req.headers.host, rawPath);
  if (req.method === 'DELETE' && q.has('uploadId')) {
    const u = uploads.get(q.get('uploadId'));
    if (!u || u.key !== key) return answer(404, xmlErr('NoSuchUpload', 'The specified upload does not exist.'));
    uploads.delete(q.get('uploadId'));
    return answer(204, '');
  }
  if (req.method === 'GET' && q.has('uploads') && key === '') {
    const prefix = q.get('prefix') || '';
    const mine = [...uploads.entries()].filter(([, u]) => u.bucket === bucket && u.key.startsWith(prefix));
    const initiated = (u) => new Date(Date.parse(u.initiated) - config.uploads_age_s * 1000).toISOString();
    return answer(200, '<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult>' +
      `<Bucket>${xmlEsc(bucket)}</Bucket><IsTruncated>false</IsTruncated>` +
      mine.map(([id, u]) => `<Upload><Key>${xmlEsc(u.key)}</Key><UploadId>${xmlEsc(id)}</UploadId>` +
                            `<Initiated>${initiated(u)}</Initiated></Upload>`).join('') +
      '</ListMultipartUploadsResult>');
  }
  if (q.has('uploadId') && !uploads.has(q.get('uploadId')))
    return answer(404, xmlErr('NoSuchUpload', 'The specified upload does not exist.'));
  let url = req.url;
  if (req.method === 'GET' && q.get('list-type') === '2' && config.list_max_keys > 0)
    url += `&max-keys=${config.list_max_keys}`; // after the check: s3rver's business
  return forward(req, res, log, payload, url, unsigned, (status, body) => {
    if (req.method === 'POST' && q.has('uploads') && status === 200) {
      const m = /<UploadId>([^<]+)<\/UploadId>/.exec(body.toString());
      if (m) uploads.set(m[1], { bucket, key, initiated: new Date().toISOString() });
    }
    if (req.method === 'POST' && q.has('uploadId') && status === 200) uploads.delete(q.get('uploadId'));
  });
}

function forward(req, res, log, payload, url, unsigned, seen) {
  const headers = { ...req.headers };
  if (unsigned) {
    // s3rver takes a request without Authorization as anonymous
    delete headers.authorization;
    headers['x-amz-content-sha256'] = crypto.createHash('sha256').update(payload).digest('hex');
  }
  const fwd = http.request({ host: '127.0.0.1', port: up.port, method: req.method, path: url, headers }, (r) => {
    const chunks = [];
    r.on('data', (c) => chunks.push(c));
    r.on('end', () => {
      const body = Buffer.concat(chunks);
      if (seen) seen(r.statusCode, body);
      log.status = r.statusCode;
      res.writeHead(r.statusCode, r.headers);
      res.end(body);
    });
  });
  fwd.on('error', (e) => {
    log.status = 502;
    res.writeHead(502, { 'content-type': 'application/xml' });
    res.end(xmlErr('BadGateway', e.message));
  });
  fwd.end(payload);
}
server.listen(+(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`s3 front on 127.0.0.1:${server.address().port}`);
});
const stop = () => { server.close(); s3rver.close().finally(() => process.exit(0)); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
