import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  documentContent,
  documentParameters,
  FixedRuntime,
  INSTALLER_PATH,
  InstallerArgs,
  InstallMode,
  INSTALLER_STEPS,
  refusedParameter,
} from "../../provider/clouds/aws/ssm-installer-content";
import { planDocument, SsmApiError } from "../../provider/sandbox/ssm-documents";
import { writeFakeCurl } from "../fixtures/fake-curl";

/**
 * The custom installer document is what ssm:SendCommand is scoped to, so its parameters must bound what a caller
 * can make an instance run: only the runtime's installer, with settings that cannot become commands.
 */
const PIN = "sha256//tYh4Wx8sV0XQb5h3s2lN+2m3CjYkAR9Xb8n7Qe1UZ8o=";
const OTHER_PIN = `sha256//${"B".repeat(43)}=`;

interface Doc {
  parameters: Record<string, { allowedPattern?: string; default?: string }>;
  mainSteps: { name: string; action: string; onFailure?: string; inputs: { runCommand: string[] } }[];
}
const doc = (mode: InstallMode, fixed?: FixedRuntime): Doc => JSON.parse(documentContent(mode, fixed));
const DOCS: [string, Doc][] = [
  ["agent", doc("agent")],
  ["agentless", doc("agentless")],
  ["agentless, fixed to a runtime", doc("agentless", { proxyAddr: "https://runtime.example.com:443/", caPin: PIN })],
];

const agentless: InstallerArgs = {
  mode: "agentless",
  token: "aws-discovery-iam-token",
  scriptName: "default-agentless-installer",
  proxyAddr: "127.0.0.1:3080",
  method: "ec2",
  caPin: PIN,
  sshdConfig: "/etc/ssh/sshd_config",
};

// What a caller with ssm:SendCommand on the document would try, in every parameter.
const ATTACKS: [string, string][] = [
  ["a second command", "x; rm -rf /"],
  ["a PATH of the caller's", "PATH=/tmp"],
  ["a quoted PATH", "PATH='/tmp'"],
  ["a preloaded library", "LD_PRELOAD=/tmp/evil.so"],
  ["a quoted preloaded library", "LD_PRELOAD='/tmp/evil.so'"],
  ["a restart command of the caller's", "DISCOVERY_SSHD_RESTART='reboot'"],
  ["another installer variable", "DISCOVERY_CA_FILE='/tmp/ca.pem'"],
  ["a line of its own", "iam\nreboot"],
  ["a trailing newline", "iam\n"],
  ["a command substitution", "$(reboot)"],
  ["backquotes", "`reboot`"],
  ["a variable", "$HOME"],
  ["a quote to close the shell's", "x'; reboot; '"],
  ["a space (another word)", "iam reboot"],
  ["a path out of /etc/ssh", "/etc/ssh/../../tmp/x"],
];

describe("the custom installer document", () => {
  describe.each(DOCS)("%s", (_, d) => {
    it("has no env parameter, and every parameter has an allowedPattern", () => {
      expect(d.parameters.env).toBeUndefined();
      for (const [name, p] of Object.entries(d.parameters))
        expect([name, typeof p.allowedPattern]).toEqual([name, "string"]);
    });

    it.each(ATTACKS)("every parameter's allowedPattern refuses %s", (_, value) => {
      const accepted = Object.entries(d.parameters).filter(([, p]) => new RegExp(p.allowedPattern!).test(value));
      expect(accepted.map(([name]) => name)).toEqual([]);
    });

    it("every parameter appears in the scripts inside single quotes only", () => {
      const used = new Set<string>();
      for (const step of d.mainSteps)
        for (const line of step.inputs.runCommand) {
          for (const { name, quoted } of placeholders(line)) {
            used.add(name);
            expect({ line, name, quoted }).toEqual({ line, name, quoted: true });
          }
        }
      expect([...used].sort()).toEqual(Object.keys(d.parameters).sort());
    });

    it("downloads with curl (pinned when there is a pin) and stops on a failed download; installs with fixed variables", () => {
      expect(d.mainSteps.map((s) => [s.name, s.action, s.onFailure])).toEqual([
        [INSTALLER_STEPS[0], "aws:runShellScript", "exit"],
        [INSTALLER_STEPS[1], "aws:runShellScript", undefined],
      ]);
      expect(d.mainSteps[0].inputs.runCommand).toContain("pin='{{ caPin }}'");
      const install = d.mainSteps[1].inputs.runCommand;
      expect(install).toHaveLength(1);
      expect(install[0]).toMatch(
        /^(DISCOVERY_(TOKEN|JOIN_METHOD|CA_PIN|REJOIN|SSHD_CONFIG)='\{\{ \w+ \}\}' )+exec \/bin\/sh \/var\/lib\/discovery\/ssm-installer\.sh$/,
      );
    });
  });

  it("the parameters install-ssm sends are ones the document accepts", () => {
    const params = documentParameters(agentless);
    expect(params).toEqual({
      token: ["aws-discovery-iam-token"],
      scriptName: ["default-agentless-installer"],
      proxyAddr: ["127.0.0.1:3080"],
      joinMethod: ["ec2"],
      caPin: [PIN],
      sshdConfigPath: ["/etc/ssh/sshd_config"],
    });
    expect(refusedParameter(params)).toBeUndefined();
    const d = doc("agentless");
    for (const [name, [value]] of Object.entries(params))
      expect([name, new RegExp(d.parameters[name].allowedPattern!).test(value)]).toEqual([name, true]);
    expect(Object.keys(documentParameters({ ...agentless, mode: "agent", caPin: undefined }))).toEqual([
      "token",
      "scriptName",
      "proxyAddr",
      "joinMethod",
      "caPin",
    ]);
  });

  it("refusedParameter names the parameter SSM would refuse", () => {
    expect(refusedParameter(documentParameters({ ...agentless, method: "azure" }))).toBe(
      'SSM document parameter joinMethod "azure" does not match its allowedPattern ^(iam|ec2|token)$',
    );
  });

  it("a document fixed to a runtime accepts only that runtime's address and pin", () => {
    const d = doc("agent", { proxyAddr: "https://runtime.example.com:443/", caPin: PIN });
    const accepts = (name: string, v: string) => new RegExp(d.parameters[name].allowedPattern!).test(v);
    expect(d.parameters.proxyAddr.default).toBe("runtime.example.com:443");
    expect(accepts("proxyAddr", "runtime.example.com:443")).toBe(true);
    expect(accepts("proxyAddr", "runtimeXexample.com:443")).toBe(false);
    expect(accepts("proxyAddr", "evil.example.com:443")).toBe(false);
    expect(accepts("caPin", PIN)).toBe(true);
    expect(accepts("caPin", OTHER_PIN)).toBe(false);
    expect(accepts("caPin", "")).toBe(false);
  });
});

describe("the sandbox's SSM simulator", () => {
  it("plans the document as two shell steps with the parameters pasted in, and refuses what allowedPattern refuses", () => {
    const content = documentContent("agentless");
    const plan = planDocument("DiscoveryInstaller", "1", content, documentParameters(agentless));
    expect(plan.steps.map((s) => [s.name, s.action])).toEqual(INSTALLER_STEPS.map((n) => [n, "aws:runShellScript"]));
    expect(plan.steps[1].runCommand![0]).toContain("DISCOVERY_TOKEN='aws-discovery-iam-token'");
    const hostile = { ...documentParameters(agentless), joinMethod: ["iam' ; reboot ; '"] };
    expect(() => planDocument("DiscoveryInstaller", "1", content, hostile)).toThrow(
      new SsmApiError(
        "InvalidParameters",
        `document DiscoveryInstaller: parameter "joinMethod" value "iam' ; reboot ; '" failed to satisfy ` +
          "constraint: allowedPattern ^(iam|ec2|token)$",
      ),
    );
  });
});

describe("the custom installer document's steps under sh", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ssm-document-"));
    writeFakeCurl(dir);
    fs.writeFileSync(
      path.join(dir, "installer.sh"),
      `printf "%s\\0" "$#" "$DISCOVERY_TOKEN" "$DISCOVERY_JOIN_METHOD" "$DISCOVERY_CA_PIN" ` +
        `"\${DISCOVERY_SSHD_CONFIG-unset}" >"$RECORD/installer.args"\n`,
    );
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Step `i` as SSM runs it: parameters pasted in as text, /var/lib/discovery moved into the temp dir. */
  function runStep(i: number, params: Record<string, string[]>, env: Record<string, string> = {}) {
    const d = doc("agentless");
    const script = d.mainSteps[i].inputs.runCommand
      .join("\n")
      .replace(/\{\{ (\w+) \}\}/g, (_, name: string) => (params[name] ?? [d.parameters[name].default])[0])
      .replaceAll(path.dirname(INSTALLER_PATH), path.join(dir, "data"));
    return spawnSync("sh", ["-c", script], {
      cwd: dir,
      encoding: "utf8",
      env: { ...process.env, ...env, PATH: `${path.join(dir, "bin")}:${process.env.PATH}`, RECORD: dir },
    });
  }
  const recorded = (file: string) => fs.readFileSync(path.join(dir, file), "utf8").split("\0").slice(0, -1);
  const installer = () => path.join(dir, "data", path.basename(INSTALLER_PATH));

  it("downloads with the pin, then runs the installer with the token in its environment and no arguments", () => {
    const params = documentParameters(agentless);
    const download = runStep(0, params);
    expect(download.stderr).toBe("");
    expect(download.status).toBe(0);
    expect(recorded("curl.args")).toEqual([
      "-sS",
      "--fail",
      "--max-time",
      "120",
      "-k",
      "--pinnedpubkey",
      PIN,
      "-o",
      `${installer()}.part`,
      "https://127.0.0.1:3080/webapi/scripts/installer/default-agentless-installer",
    ]);
    const install = runStep(1, params);
    expect(install.stderr).toBe("");
    expect(install.status).toBe(0);
    expect(recorded("installer.args")).toEqual(["0", "aws-discovery-iam-token", "ec2", PIN, "/etc/ssh/sshd_config"]);
  });

  it("without a pin downloads with the system's CAs (no -k)", () => {
    expect(runStep(0, documentParameters({ ...agentless, caPin: undefined })).status).toBe(0);
    expect(recorded("curl.args")).not.toContain("-k");
    expect(recorded("curl.args")).not.toContain("--pinnedpubkey");
  });

  it("a failed download fails the step and leaves no installer, not even an earlier one", () => {
    fs.mkdirSync(path.join(dir, "data"));
    fs.writeFileSync(installer(), "echo an old installer\n");
    const r = runStep(0, documentParameters(agentless), {
      CURL_FAIL: "90:SSL: public key does not match pinned public key",
    });
    expect(r.status).toBe(90);
    expect(r.stderr).toContain("public key does not match pinned public key");
    expect(fs.readdirSync(path.join(dir, "data"))).toEqual([]);
  });
});

/** Each `{{ name }}` in a shell line, and whether it stands inside single quotes. */
function placeholders(line: string): { name: string; quoted: boolean }[] {
  const found: { name: string; quoted: boolean }[] = [];
  let state: "plain" | "single" | "double" = "plain";
  for (let i = 0; i < line.length; i++) {
    const m = /^\{\{ *(\w+) *\}\}/.exec(line.slice(i));
    if (m) {
      found.push({ name: m[1], quoted: state === "single" });
      i += m[0].length - 1;
      continue;
    }
    const c = line[i];
    if (state === "single") {
      if (c === "'") state = "plain";
    } else if (c === "\\") i++;
    else if (state === "double") {
      if (c === '"') state = "plain";
    } else if (c === "'") state = "single";
    else if (c === '"') state = "double";
  }
  expect({ line, state }).toEqual({ line, state: "plain" });
  return found;
}
