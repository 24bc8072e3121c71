// The official AWS SDK's credential providers as an oracle of
// aws-creds-double.mjs: if the SDK for JavaScript takes the double's
// answers, the double behaves as the container endpoint and IMDSv2 do
// for the SDKs. `node aws-creds-sdk.mjs container|imds` with the same
// environment variables apexops reads (AWS_CONTAINER_CREDENTIALS_FULL_URI,
// AWS_CONTAINER_AUTHORIZATION_TOKEN, AWS_EC2_METADATA_SERVICE_ENDPOINT);
// prints {"accessKeyId", "expiration", "token": <bool>} or fails (exit 1)
// with the SDK's error. Never prints a secret.
import { fromContainerMetadata, fromInstanceMetadata } from '@smithy/credential-provider-imds';
import { fromHttp } from '@aws-sdk/credential-provider-http';

const kind = process.argv[2];
let provider;
if (kind === 'imds') provider = fromInstanceMetadata({ timeout: 2000, maxRetries: 0 });
else if (kind === 'container') provider = fromContainerMetadata({ timeout: 2000, maxRetries: 0 });
else if (kind === 'http') provider = fromHttp({ timeout: 2000, maxRetries: 0 });
else {
  console.error('usage: aws-creds-sdk.mjs container|http|imds');
  process.exit(2);
}
try {
  const c = await provider();
  console.log(JSON.stringify({ accessKeyId: c.accessKeyId, expiration: c.expiration?.toISOString(),
                               token: typeof c.sessionToken === 'string' && c.sessionToken.length > 0 }));
} catch (e) {
  console.error(`${e.name}: ${e.message}`);
  process.exit(1);
}
