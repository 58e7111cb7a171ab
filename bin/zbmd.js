#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled TypeScript (run `npm run build` first).
import('../dist/src/cli/main.js')
  .then((cli) => cli.main(process.argv))
  .catch((error) => {
    if (error && error.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/src/cli')) {
      console.error(
        'zbmd: the build is missing; run `npm install` (or `npm run build`) in the zbmd folder first.',
      );
    } else {
      console.error(error);
    }
    process.exit(1);
  });
