// A double of Google's OAuth2 token endpoint for service accounts, our own
// (no emulator of it runs offline), following
// https://developers.google.com/identity/protocols/oauth2/service-account
// ("Preparing to make an authorized API call" / "Making the access token
// request"): POST /token with grant_type
// urn:ietf:params:oauth:grant-type:jwt-bearer and assertion=<JWT>. The JWT
// must be RS256-signed with the service account's key (checked with its
// public key), its header {"alg":"RS256","typ":"JWT"}, its claims iss (the
// client_email), scope, aud (this endpoint's URL), iat and exp (at most an
// hour apart, exp in the future, iat not in the future beyond a minute of
// skew). The answer is {"access_token", "expires_in", "token_type":"Bearer"};
// a bad request is 400 {"error":"invalid_grant","error_description"} as
// Google answers.
//
// GET /tokeninfo?access_token=T answers {"scope","expires_in","email"} for a
// live token (400 invalid_token otherwise): the S3 front asks it to accept
// bearer tokens. GET /__double/stats gives {"issued": n}; POST
// /__double/config {"expires_in": s, "fail": n} changes the lifetime of
// tokens issued next, or fails the next n exchanges with 503.
//
// env: PORT (0: any), SA_EMAIL, SA_PUBKEY (a PEM file). Prints
// "token double on 127.0.0.1:PORT".
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

const EMAIL = process.env.SA_EMAIL;
const PUBKEY = fs.readFileSync(process.env.SA_PUBKEY, 'utf8');
const tokens = new Map(); // token -> { scope, expires }
let issued = 0;
let expiresIn = 3600;
let failNext = 0;

const b64urlJson = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));

const server = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = Buffer.concat(chunks).toString('utf8');
  const url = new URL(req.url, 'http://127.0.0.1');
  const json = (status, obj) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(obj));
  };
  const grantErr = (desc) => json(400, { error: 'invalid_grant', error_description: desc });

  if (req.method === 'POST' && url.pathname === '/token') {
    if (failNext > 0) {
      failNext--;
      return json(503, { error: 'backend_error', error_description: 'injected by the test' });
    }
    if (!/^application\/x-www-form-urlencoded/.test(req.headers['content-type'] || ''))
      return json(400, { error: 'invalid_request', error_description: 'form body expected' });
    const form = new URLSearchParams(body);
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer')
      return json(400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type' });
    const parts = (form.get('assertion') || '').split('.');
    if (parts.length !== 3) return grantErr('Invalid JWT: not three parts');
    let header, claims;
    try {
      header = b64urlJson(parts[0]);
      claims = b64urlJson(parts[1]);
    } catch {
      return grantErr('Invalid JWT: bad base64url or JSON');
    }
    if (header.alg !== 'RS256' || (header.typ && header.typ !== 'JWT')) return grantErr('Invalid JWT: alg must be RS256');
    const ok = crypto.verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), PUBKEY,
                             Buffer.from(parts[2], 'base64url'));
    if (!ok) return grantErr('Invalid JWT Signature.');
    const now = Math.floor(Date.now() / 1000);
    const aud = `http://${req.headers.host}/token`;
    if (claims.iss !== EMAIL) return grantErr('Invalid issuer');
    if (claims.aud !== aud) return grantErr(`Invalid JWT: aud must be ${aud}`);
    if (typeof claims.scope !== 'string' || claims.scope === '') return grantErr('Invalid JWT: no scope');
    if (!Number.isInteger(claims.iat) || !Number.isInteger(claims.exp)) return grantErr('Invalid JWT: iat and exp must be integers');
    if (claims.iat > now + 60) return grantErr('Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.');
    if (claims.exp <= now || claims.exp - claims.iat > 3600) return grantErr('Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.');
    const token = `ya29.${crypto.randomBytes(24).toString('base64url')}`;
    tokens.set(token, { scope: claims.scope, expires: now + expiresIn });
    issued++;
    return json(200, { access_token: token, expires_in: expiresIn, token_type: 'Bearer' });
  }
  if (req.method === 'GET' && url.pathname === '/tokeninfo') {
    const t = tokens.get(url.searchParams.get('access_token') || '');
    const now = Math.floor(Date.now() / 1000);
    if (!t || t.expires <= now) return json(400, { error: 'invalid_token', error_description: 'Invalid Value' });
    return json(200, { scope: t.scope, expires_in: t.expires - now, email: EMAIL });
  }
  if (req.method === 'GET' && url.pathname === '/__double/stats') return json(200, { issued });
  if (req.method === 'POST' && url.pathname === '/__double/config') {
    const c = JSON.parse(body || '{}');
    if (c.expires_in !== undefined) expiresIn = c.expires_in;
    if (c.fail !== undefined) failNext = c.fail;
    return json(200, {});
  }
  return json(404, { error: 'not_found' });
});
server.listen(+(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`token double on 127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('SIGINT', () => server.close(() => process.exit(0)));
