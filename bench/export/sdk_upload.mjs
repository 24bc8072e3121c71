// The AWS SDK's managed upload (@aws-sdk/lib-storage, its defaults: 5 MiB
// parts, 4 at a time) of a finished file to the same S3 server apexops
// exported to: the baseline of bench/export. Prints the seconds taken.
//   node sdk_upload.mjs ENDPOINT BUCKET KEY FILE
import fs from 'node:fs';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

const [endpoint, bucket, key, file] = process.argv.slice(2);
const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true,
  credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  requestChecksumCalculation: 'WHEN_REQUIRED' });
const t0 = process.hrtime.bigint();
await new Upload({ client: s3,
  params: { Bucket: bucket, Key: key, Body: fs.createReadStream(file) } }).done();
console.log((Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3));
