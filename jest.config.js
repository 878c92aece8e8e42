/** Jest projects: fast unit tests, and integration tests that drive real processes. */
const tsJest = { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }] };
// Programs the tests and benches copy into test/.work carry package.json files of their own.
const modulePathIgnorePatterns = ["<rootDir>/test/.work/", "<rootDir>/bench/pulumi-program/"];
module.exports = {
  projects: [
    {
      displayName: "unit",
      testEnvironment: "node",
      modulePathIgnorePatterns,
      transform: tsJest,
      testMatch: ["<rootDir>/test/unit/**/*.test.ts", "<rootDir>/provider/**/*.test.ts"],
    },
    {
      displayName: "integration",
      testEnvironment: "node",
      modulePathIgnorePatterns,
      transform: tsJest,
      testMatch: ["<rootDir>/test/integration/**/*.test.ts", "<rootDir>/test/e2e/**/*.test.ts"],
      setupFilesAfterEnv: ["<rootDir>/test/fixtures/long-timeout.ts"],
    },
  ],
};
