// A double of the two AWS credential endpoints the S3 export can take
// temporary credentials from: our own, because no npm package serves
// them (TEST-PEERS.md: a double of our own only where no peer covers an
// endpoint). It follows AWS's documentation:
//   - AWS SDKs and Tools Reference Guide, "Container credential provider"
//     https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html
//     GET on the URI (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI under
//     169.254.170.2, or AWS_CONTAINER_CREDENTIALS_FULL_URI), with the
//     value of AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) in the
//     Authorization header; the answer {"AccessKeyId", "SecretAccessKey",
//     "Token", "Expiration", "RoleArn"} (ECS task roles; EKS Pod Identity
//     answers the same fields, with "AccountId");
//   - AWS SDKs and Tools Reference Guide, "IMDS credential provider"
//     https://docs.aws.amazon.com/sdkref/latest/guide/feature-imds-credentials.html
//     and the Amazon EC2 User Guide, "Use the Instance Metadata Service to
//     access instance metadata" / "Retrieve security credentials from
//     instance metadata"
//     https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
//     https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-metadata-security-credentials.html
//     IMDSv2: PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds
//     (1 to 21600; 400 without it or out of range; 403 with
//     X-Forwarded-For), the token in the body; every GET then needs
//     X-aws-ec2-metadata-token (401 without it, or with a wrong or expired
//     one): /latest/meta-data/iam/security-credentials/ names the role,
//     /latest/meta-data/iam/security-credentials/<role> answers
//     {"Code": "Success", "LastUpdated", "Type": "AWS-HMAC", "AccessKeyId",
//     "SecretAccessKey", "Token", "Expiration"}; an unknown role is 404.
//
// Both hand out the same current credentials. New ones are issued when the
// current ones have expired, have less than rotate_ahead_s left, or after
// a rotate; all of them, with their expiry, are listed for the S3 front
// (s3-sigv4-front.mjs, POST /__front/temp_keys), which then accepts them
// and requires the matching x-amz-security-token, as S3 does.
//
// env: PORT (0: any), ROLE (default apexops-export), AUTH_TOKEN (the
// container endpoint's expected Authorization; unset: none required),
// CONTAINER_PATH (default /v2/credentials/apexops-task: the path the
// container endpoint answers, relative URI or full URI's path).
// Prints "aws creds double on 127.0.0.1:PORT".
//
// Test controls (not AWS):
//   POST /__double/config {"ttl_s": n} lifetime of credentials issued next
//     (default 3600); {"rotate_ahead_s": n} issue new ones when fewer than
//     n seconds are left (default 0); {"rotate": true} issue new ones at
//     the next fetch; {"fail": n, "fail_status": s, "fail_on":
//     "container"|"imds"|"any"} answer the next n credential requests
//     (container GETs, IMDS token PUTs) with s (default 500); {"refuse":
//     "container"|"imds"|null} refuse every such request with 403/401
//   GET /__double/stats  request counters: {"container", "imds_token",
//     "imds_role", "imds_creds", "unauthorized", "bad_request",
//     "injected", "issued"}
//   GET /__double/issued [{AccessKeyId, SecretAccessKey, Token,
//     Expiration}] every set handed out so far
import crypto from 'node:crypto';
import http from 'node:http';

const ROLE = process.env.ROLE || 'apexops-export';
const AUTH_TOKEN = process.env.AUTH_TOKEN || '';
const CONTAINER_PATH = process.env.CONTAINER_PATH || '/v2/credentials/apexops-task';
const CREDS_PATH = '/latest/meta-data/iam/security-credentials/';

const config = { ttl_s: 3600, rotate_ahead_s: 0, rotate: false, fail: 0, fail_status: 500,
                 fail_on: 'any', refuse: null };
const stats = { container: 0, imds_token: 0, imds_role: 0, imds_creds: 0, unauthorized: 0,
                bad_request: 0, injected: 0, issued: 0 };
const issued = [];
const imdsTokens = new Map(); // token -> expiry (ms)
let current = null;

const upperAlnum = (n) => {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  return [...crypto.randomBytes(n)].map((b) => abc[b % abc.length]).join('');
};
// AWS's shapes: ASIA + 16, a 40-character secret, a long base64 token
// (with '/', '+' and '=' so that encoding is exercised)
const issue = () => {
  const now = Date.now();
  current = {
    AccessKeyId: `ASIA${upperAlnum(16)}`,
    SecretAccessKey: crypto.randomBytes(30).toString('base64'),
    Token: `IQoJb3JpZ2luX2Vj/+${crypto.randomBytes(120).toString('base64')}`,
    Expiration: new Date(Math.floor(now / 1000) * 1000 + config.ttl_s * 1000).toISOString()
      .replace(/\.\d{3}Z$/, 'Z'),
    LastUpdated: new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
  issued.push(current);
  stats.issued++;
  config.rotate = false;
};
const creds = () => {
  const left = current ? Date.parse(current.Expiration) - Date.now() : 0;
  if (!current || config.rotate || left <= config.rotate_ahead_s * 1000) issue();
  return current;
};
// an injected failure for this kind of request, or null
const injected = (kind) => {
  if (config.fail > 0 && (config.fail_on === 'any' || config.fail_on === kind)) {
    config.fail--;
    stats.injected++;
    return config.fail_status;
  }
  return null;
};

const server = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const url = new URL(req.url, 'http://127.0.0.1');
  const json = (status, obj) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(obj));
  };
  const text = (status, body, headers = {}) => {
    res.writeHead(status, { 'content-type': 'text/plain', ...headers });
    res.end(body);
  };

  // ---- controls ----
  if (url.pathname === '/__double/config' && req.method === 'POST') {
    const c = JSON.parse(Buffer.concat(chunks).toString() || '{}');
    for (const k of Object.keys(c)) {
      if (!(k in config)) return json(400, { error: `unknown setting ${k}` });
      config[k] = c[k];
    }
    return json(200, config);
  }
  if (url.pathname === '/__double/stats') return json(200, stats);
  if (url.pathname === '/__double/issued') {
    return json(200, issued.map(({ AccessKeyId, SecretAccessKey, Token, Expiration }) =>
      ({ AccessKeyId, SecretAccessKey, Token, Expiration })));
  }

  // ---- the container endpoint ----
  if (url.pathname === CONTAINER_PATH) {
    if (req.method !== 'GET') return json(405, { code: 'MethodNotAllowed', message: 'GET only' });
    stats.container++;
    if (config.refuse === 'container' || (AUTH_TOKEN && req.headers.authorization !== AUTH_TOKEN)) {
      stats.unauthorized++;
      const status = req.headers.authorization === undefined ? 401 : 403;
      return json(status, { code: 'AccessDeniedException', message: 'Unauthorized' });
    }
    const f = injected('container');
    if (f) return json(f, { code: 'InternalError', message: 'injected by the test' });
    const c = creds();
    return json(200, { AccessKeyId: c.AccessKeyId, SecretAccessKey: c.SecretAccessKey, Token: c.Token,
                       Expiration: c.Expiration, RoleArn: `arn:aws:iam::123456789012:role/${ROLE}` });
  }

  // ---- IMDSv2 ----
  if (url.pathname === '/latest/api/token') {
    if (req.method !== 'PUT') return text(405, 'Method Not Allowed');
    stats.imds_token++;
    if (req.headers['x-forwarded-for'] !== undefined) return text(403, 'Forbidden');
    if (config.refuse === 'imds') {
      stats.unauthorized++;
      return text(403, 'Forbidden');
    }
    const f = injected('imds');
    if (f) return text(f, 'injected by the test');
    const ttl = req.headers['x-aws-ec2-metadata-token-ttl-seconds'];
    if (ttl === undefined || !/^\d+$/.test(ttl) || +ttl < 1 || +ttl > 21600) {
      stats.bad_request++;
      return text(400, 'Bad Request');
    }
    const token = crypto.randomBytes(42).toString('base64');
    imdsTokens.set(token, Date.now() + +ttl * 1000);
    return text(200, token, { 'x-aws-ec2-metadata-token-ttl-seconds': ttl });
  }
  if (url.pathname.startsWith('/latest/')) {
    if (req.method !== 'GET') return text(405, 'Method Not Allowed');
    const t = req.headers['x-aws-ec2-metadata-token'];
    const exp = t !== undefined ? imdsTokens.get(t) : undefined;
    if (exp === undefined || exp <= Date.now()) {
      stats.unauthorized++;
      return text(401, 'Unauthorized');
    }
    if (url.pathname === CREDS_PATH || url.pathname === CREDS_PATH.slice(0, -1)) {
      stats.imds_role++;
      return text(200, ROLE);
    }
    if (url.pathname === CREDS_PATH + ROLE) {
      stats.imds_creds++;
      const c = creds();
      return json(200, { Code: 'Success', LastUpdated: c.LastUpdated, Type: 'AWS-HMAC',
                         AccessKeyId: c.AccessKeyId, SecretAccessKey: c.SecretAccessKey, Token: c.Token,
                         Expiration: c.Expiration });
    }
    return text(404, 'Not Found');
  }
  return text(404, 'Not Found');
});
server.listen(+(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`aws creds double on 127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('SIGINT', () => server.close(() => process.exit(0)));
