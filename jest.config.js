/** Jest projects: fast unit tests, and integration tests that drive real processes. */
// jose 6 and cookie 2 ship ES modules only: Node 20 requires them natively, Jest's CommonJS runtime needs them
// compiled; @fastify/cookie import()s cookie, which Jest runs only once that import is compiled to a require.
const esmOnly = ["jose", "cookie", "@fastify/cookie"];
const tsJest = {
  "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }],
  [`/node_modules/(${esmOnly.join("|")})/.+\\.js$`]: [
    "ts-jest",
    { tsconfig: { allowJs: true, module: "commonjs", target: "ES2022", isolatedModules: true } },
  ],
};
const transformIgnorePatterns = [`/node_modules/(?!(${esmOnly.join("|")})/)`];
// Programs the tests and benches copy into test/.work carry package.json files of their own.
const modulePathIgnorePatterns = ["<rootDir>/test/.work/", "<rootDir>/bench/pulumi-program/"];
module.exports = {
  projects: [
    {
      displayName: "unit",
      testEnvironment: "node",
      modulePathIgnorePatterns,
      transform: tsJest,
      transformIgnorePatterns,
      testMatch: ["<rootDir>/test/unit/**/*.test.ts", "<rootDir>/provider/**/*.test.ts"],
    },
    {
      displayName: "integration",
      testEnvironment: "node",
      modulePathIgnorePatterns,
      transform: tsJest,
      transformIgnorePatterns,
      testMatch: ["<rootDir>/test/integration/**/*.test.ts", "<rootDir>/test/e2e/**/*.test.ts"],
      setupFilesAfterEnv: ["<rootDir>/test/fixtures/long-timeout.ts"],
    },
  ],
};
