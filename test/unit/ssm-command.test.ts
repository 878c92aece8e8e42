import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  InstallerArgs,
  runShellScriptCommands,
  shellQuote,
  validateDocumentName,
} from "../../provider/clouds/aws/ssm-document";
import { writeFakeCurl } from "../fixtures/fake-curl";

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
  writeFakeCurl(dir);
  fs.writeFileSync(path.join(dir, "installer.sh"), FAKE_INSTALLER);
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const FAKE_INSTALLER =
  `printf '%s\\0' "$#" "\${DISCOVERY_TOKEN-unset}" "\${DISCOVERY_JOIN_METHOD-unset}" "\${DISCOVERY_CA_PIN-unset}" ` +
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
  it("agent mode with a pin: exports the join method and pin, fetches with the pin, gives sh the token in its environment", () => {
    expect(runShellScriptCommands(agent)).toEqual([
      "export DISCOVERY_JOIN_METHOD='iam'",
      `export DISCOVERY_CA_PIN='${PIN}'`,
      `installer="$(curl -sS --fail --pinnedpubkey '${PIN}' -k 'https://127.0.0.1:3080/webapi/scripts/installer/default-installer')"` +
        ` && printf '%s\\n' "$installer" | DISCOVERY_TOKEN='aws-discovery-iam-token' sh`,
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
        ` && printf '%s\\n' "$installer" | DISCOVERY_TOKEN='aws-discovery-iam-token' sh`,
    ]);
  });

  it("quotes hostile values: they reach curl and the installer literally, run nothing, and the token is no argument", () => {
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
    expect(recorded("installer.args")).toEqual(["0", HOSTILE.token, HOSTILE.method, HOSTILE.caPin, HOSTILE.sshdConfig]);
    expect(pwned()).toEqual([]);
  });

  it("fails with curl's exit code when the download fails, without running anything", () => {
    const r = runSh(runShellScriptCommands(agent).join("\n"), {
      CURL_FAIL: "22:The requested URL returned error: 404",
    });
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
