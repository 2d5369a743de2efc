// Starts s3rver (a fake S3 on the file system) on 127.0.0.1:PORT with its
// data in DIR; used by ../services.sh. Besides its built-in S3RVER/S3RVER
// key it accepts test/test, the credentials the other emulators take, so
// that one process (a worker on the emulators) can use them all.
const S3rver = require("s3rver");
require("s3rver/lib/models/account").DUMMY_ACCOUNT.createKeyPair("test", "test");
const [port, directory] = [Number(process.argv[2]), process.argv[3]];
new S3rver({ port, address: "127.0.0.1", directory, silent: true, configureBuckets: [] })
  .run()
  .then(() => console.log(`s3 listening on 127.0.0.1:${port}`))
  .catch((err) => { console.error(err); process.exit(1); });
