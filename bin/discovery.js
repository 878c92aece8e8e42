#!/usr/bin/env node
"use strict";
// The compiled CLI; `npm run build` (run by `npm run setup` and on pack) produces it.
require("../dist/provider/cli/index.js")
  .main()
  .catch((err) => {
    process.stderr.write(`discovery: ${err && err.message ? err.message : err}\n`);
    process.exit(1);
  });
