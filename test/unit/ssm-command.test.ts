import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  documentContent,
  documentParameters,
  INSTALLER_PATH,
  InstallerArgs,
  PARAMETER_PATTERNS,
  runShellScriptCommands,
  shellQuote,
  validateDocumentName,
} from "../../provider/clouds/aws/ssm-document";

const PIN = "sha256//tYh4Wx8sV0XQb5h3s2lN+2m3CjYkAR9Xb8n7Qe1UZ8o=";

// Values a shell would mangle or run if they were pasted unquoted.
const HOSTILE = {
  token: `it's a "token" $(touch pwned-token) \`touch pwned-tick\` ; touch pwned-semi`,
  caPin: `sha256//a'b $(touch pwned-pin)`,
  sshdConfig: `/etc/ssh/my sshd_config's $(touch pwned-sshd)`,
  method: `iam' ; touch pwned-method ; '`,
};

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "ssm-command-"));
  fs.mkdirSync(path.join(dir, "bin"));
  // A fake curl that records its arguments and prints a fake installer, which records what it was given.
  fs.writeFileSync(
    path.join(dir, "bin", "curl"),
    `#!/bin/sh\nfor a in "$@"; do printf '%s\\0' "$a"; done >"$RECORD/curl.args"\n` +
      `[ -z "\${CURL_FAIL:-}" ] || { echo "curl: (22) The requested URL returned error: 404" >&2; exit 22; }\n` +
      `cat "$RECORD/installer.sh"\n`,
    { mode: 0o755 },
  );
  fs.writeFileSync(path.join(dir, "installer.sh"), FAKE_INSTALLER);
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const FAKE_INSTALLER =
  `printf '%s\\0' "$#" "$1" "\${DISCOVERY_JOIN_METHOD-unset}" "\${DISCOVERY_CA_PIN-unset}" ` +
  `"\${DISCOVERY_SSHD_CONFIG-unset}" >"$RECORD/installer.args"\necho installed\n`;

/** Runs `script` under sh with the fake curl first on PATH, in the temp directory. */
function runSh(script: string, env: Record<string, string> = {}) {
  return spawnSync("sh", ["-c", script], {
    cwd: dir,
    encoding: "utf8",
    env: { ...process.env, ...env, PATH: `${path.join(dir, "bin")}:${process.env.PATH}`, RECORD: dir },
  });
}
const recorded = (file: string) => fs.readFileSync(path.join(dir, file), "utf8").split("\0").slice(0, -1);
const pwned = () => fs.readdirSync(dir).filter((f) => f.startsWith("pwned"));

const agent: InstallerArgs = {
  mode: "agent",
  token: "aws-discovery-iam-token",
  scriptName: "default-installer",
  proxyAddr: "127.0.0.1:3080",
  method: "iam",
  caPin: PIN,
  sshdConfig: "/etc/ssh/sshd_config",
};

describe("AWS-RunShellScript commands", () => {
  it("agent mode with a pin: exports the join method and pin, fetches with the pin, runs with the token", () => {
    expect(runShellScriptCommands(agent)).toEqual([
      "export DISCOVERY_JOIN_METHOD='iam'",
      `export DISCOVERY_CA_PIN='${PIN}'`,
      `installer="$(curl -sS --fail --pinnedpubkey '${PIN}' -k 'https://127.0.0.1:3080/webapi/scripts/installer/default-installer')"` +
        ` && printf '%s\\n' "$installer" | sh -s 'aws-discovery-iam-token'`,
    ]);
  });

  it("agentless mode without a pin: exports the sshd_config, no pin flags and no -k", () => {
    const args: InstallerArgs = {
      ...agent,
      mode: "agentless",
      caPin: undefined,
      method: "ec2",
      scriptName: "default-agentless-installer",
    };
    expect(runShellScriptCommands(args)).toEqual([
      "export DISCOVERY_JOIN_METHOD='ec2'",
      "export DISCOVERY_SSHD_CONFIG='/etc/ssh/sshd_config'",
      `installer="$(curl -sS --fail 'https://127.0.0.1:3080/webapi/scripts/installer/default-agentless-installer')"` +
        ` && printf '%s\\n' "$installer" | sh -s 'aws-discovery-iam-token'`,
    ]);
  });

  it("quotes hostile values: they reach curl and the installer literally and run nothing", () => {
    const args: InstallerArgs = { ...agent, mode: "agentless", ...HOSTILE, proxyAddr: "host'x $(touch pwned-host):1" };
    const script = runShellScriptCommands(args).join("\n");
    expect(spawnSync("sh", ["-n", "-c", script]).status).toBe(0);
    const r = runSh(script);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("installed\n");
    expect(recorded("curl.args")).toEqual([
      "-sS",
      "--fail",
      "--pinnedpubkey",
      HOSTILE.caPin,
      "-k",
      "https://host'x $(touch pwned-host):1/webapi/scripts/installer/default-installer",
    ]);
    expect(recorded("installer.args")).toEqual(["1", HOSTILE.token, HOSTILE.method, HOSTILE.caPin, HOSTILE.sshdConfig]);
    expect(pwned()).toEqual([]);
  });

  it("fails with curl's exit code when the download fails, without running anything", () => {
    const r = runSh(runShellScriptCommands(agent).join("\n"), { CURL_FAIL: "1" });
    expect(r.status).toBe(22);
    expect(r.stderr).toContain("returned error: 404");
    expect(fs.existsSync(path.join(dir, "installer.args"))).toBe(false);
  });

  it("shellQuote round-trips any string through sh", () => {
    for (const v of ["", "'", "''", "a'b'c", "$HOME", "\\'", "x\ny", "`id`", "-n"]) {
      const r = spawnSync("sh", ["-c", `printf '%s' ${shellQuote(v)}`], { encoding: "utf8" });
      expect(r.stdout).toBe(v);
    }
  });
});

describe("custom installer document parameters", () => {
  /** The runShellScript step as SSM runs it: parameters pasted into the command as text. */
  function renderStep(mode: "agent" | "agentless", params: Record<string, string[]>, installerPath: string): string {
    const doc = JSON.parse(documentContent(mode));
    const command: string = doc.mainSteps[1].inputs.runCommand.join("\n");
    return command
      .replace(/\{\{ (\w+) \}\}/g, (_, name: string) => (params[name] ?? [doc.parameters[name].default])[0])
      .replace(INSTALLER_PATH, installerPath);
  }

  it("carries token, scriptName, proxyAddr, env and (agentless) sshdConfigPath", () => {
    expect(documentParameters(agent)).toEqual({
      token: ["aws-discovery-iam-token"],
      scriptName: ["default-installer"],
      proxyAddr: ["127.0.0.1:3080"],
      env: [`DISCOVERY_JOIN_METHOD='iam' DISCOVERY_CA_PIN='${PIN}'`],
    });
    expect(documentParameters({ ...agent, mode: "agentless", caPin: undefined })).toEqual({
      token: ["aws-discovery-iam-token"],
      scriptName: ["default-installer"],
      proxyAddr: ["127.0.0.1:3080"],
      env: ["DISCOVERY_JOIN_METHOD='iam'"],
      sshdConfigPath: ["/etc/ssh/sshd_config"],
    });
  });

  it("env with hostile values matches the document's allowedPattern and reaches the installer literally", () => {
    const params = documentParameters({ ...agent, mode: "agentless", caPin: HOSTILE.caPin, method: HOSTILE.method });
    expect(params.env[0]).toMatch(PARAMETER_PATTERNS.env);
    const installer = path.join(dir, "installer.sh");
    const r = runSh(renderStep("agentless", params, installer));
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(recorded("installer.args")).toEqual([
      "1",
      "aws-discovery-iam-token",
      HOSTILE.method,
      HOSTILE.caPin,
      "/etc/ssh/sshd_config",
    ]);
    expect(pwned()).toEqual([]);
  });

  it("the document's allowedPatterns refuse parameters that would run commands", () => {
    expect(PARAMETER_PATTERNS.env.test("A=$(touch pwned)")).toBe(false);
    expect(PARAMETER_PATTERNS.env.test("A='x' ; reboot")).toBe(false);
    expect(PARAMETER_PATTERNS.env.test("A='x'\\''y' B='z'")).toBe(true);
    expect(PARAMETER_PATTERNS.token.test("t' ; reboot ; '")).toBe(false);
    expect(PARAMETER_PATTERNS.sshdConfigPath.test("/etc/ssh/x' ; reboot")).toBe(false);
    expect(PARAMETER_PATTERNS.proxyAddr.test("h/../x")).toBe(false);
    expect(PARAMETER_PATTERNS.proxyAddr.test("[::1]:3080")).toBe(true);
    expect(PARAMETER_PATTERNS.scriptName.test("default-installer")).toBe(true);
  });

  it("agent and agentless documents download from the parameterised URL, then run it", () => {
    for (const mode of ["agent", "agentless"] as const) {
      const doc = JSON.parse(documentContent(mode));
      expect(doc.schemaVersion).toBe("2.2");
      expect(doc.mainSteps.map((s: { name: string; action: string }) => `${s.name}:${s.action}`)).toEqual([
        "downloadContent:aws:downloadContent",
        "runShellScript:aws:runShellScript",
      ]);
      expect(doc.mainSteps[0].inputs.sourceInfo.url).toBe(
        "https://{{ proxyAddr }}/webapi/scripts/installer/{{ scriptName }}",
      );
      expect(Object.keys(doc.parameters)).toEqual(
        mode === "agent"
          ? ["token", "scriptName", "proxyAddr", "env"]
          : ["token", "scriptName", "proxyAddr", "env", "sshdConfigPath"],
      );
    }
  });
});

describe("validateDocumentName", () => {
  it.each([
    ["DiscoveryInstaller", undefined],
    ["a.b_c-9", undefined],
    ["ab", 'document name "ab" must be 3 to 128 of a-z A-Z 0-9 _ . -; choose a name such as DiscoveryInstaller'],
    [
      "has space",
      'document name "has space" must be 3 to 128 of a-z A-Z 0-9 _ . -; choose a name such as DiscoveryInstaller',
    ],
    [
      "x".repeat(129),
      `document name "${"x".repeat(129)}" must be 3 to 128 of a-z A-Z 0-9 _ . -; choose a name such as DiscoveryInstaller`,
    ],
    [
      "AWS-Mine",
      'document name "AWS-Mine" must not start with "aws" or "amazon" (AWS reserves them); choose a name such as DiscoveryInstaller',
    ],
    [
      "amazonInstaller",
      'document name "amazonInstaller" must not start with "aws" or "amazon" (AWS reserves them); choose a name such as DiscoveryInstaller',
    ],
  ])("%s", (name, message) => {
    expect(validateDocumentName(name)).toBe(message);
  });
});
