// Read one object back with the official AWS SDK (@aws-sdk/client-s3),
// path-style, and write its bytes to a file: the oracle of the S3 client's
// integration test. Exit 1 with the SDK's error on failure.
//   node s3-sdk-get.mjs ENDPOINT REGION AK SK BUCKET KEY OUTFILE
import fs from 'node:fs';
import { S3Client, GetObjectCommand } from '@aws-sdk/client-s3';

const [endpoint, region, ak, sk, bucket, key, out] = process.argv.slice(2);
const s3 = new S3Client({ endpoint, region, forcePathStyle: true,
  credentials: { accessKeyId: ak, secretAccessKey: sk },
  requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
try {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  fs.writeFileSync(out, await r.Body.transformToByteArray());
} catch (e) {
  console.error(`GetObject ${bucket}/${key}: ${e.name}: ${e.message}`);
  process.exit(1);
}
