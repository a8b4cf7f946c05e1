// Does better-sqlite3 survive the garbage collector freeing its statements on this Node? Run with the module
// resolvable from the working directory: `node -e "$(cat image/sqlite-gc-check.cjs)"`. Prints "survived".
// better-sqlite3 <= 12 compiled against the headers of Node >= 24.19 aborts here (Assertion failed: (env) != nullptr
// in RemoveEnvironmentCleanupHook, nodejs/node#65446): statements dropped, then a collection during the microtask
// checkpoint after an I/O callback, when no JavaScript context is entered. The server hit it at start-up.
const Database = require('better-sqlite3');
const { readFile } = require('node:fs/promises');
const db = new Database(':memory:');
(async () => {
  for (let round = 0; round < 200; round++) {
    for (let i = 0; i < 500; i++) db.prepare('select ? as x').get(i);
    await readFile(require.resolve('better-sqlite3'));
    const garbage = [];
    for (let j = 0; j < 2000; j++) garbage.push({ j, s: 'x'.repeat(100) });
  }
  console.log('survived');
})();
