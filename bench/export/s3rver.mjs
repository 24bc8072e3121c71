// s3rver on 127.0.0.1 (a free port) with one bucket, for bench/export.
// Prints "s3rver on 127.0.0.1:PORT".   DIR=... BUCKET=... node s3rver.mjs
import S3rver from 's3rver';

const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true,
  directory: process.env.DIR, configureBuckets: [{ name: process.env.BUCKET }] });
const { port } = await server.run();
console.log(`s3rver on 127.0.0.1:${port}`);
