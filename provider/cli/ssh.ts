import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import { isIP } from "net";
import * as os from "os";
import * as path from "path";
import { Command } from "commander";
import { answerError, request, RuntimeTarget } from "../http/client";
import { INSTANCE_ID_LABEL } from "../clouds";
import { callControl, readSandboxState } from "../sandbox/sandbox-control";
import { newEd25519KeyPair } from "../ssh/keys";
import { shellQuote } from "../util/shell";
import { target, withTarget } from "./admin";

/** A node record as `GET /v1/nodes/{name}` answers it (the fields `discovery ssh` reads). */
interface NodeRecord {
  name: string;
  labels: Record<string, string>;
  principals: string[];
}

/** Login and node of `[user@]NODE`; both are checked so neither can pass an option to ssh. */
export function parseSshTarget(arg: string, defaultUser: string): { user: string; node: string } {
  const at = arg.lastIndexOf("@");
  const user = at >= 0 ? arg.slice(0, at) : defaultUser;
  const node = at >= 0 ? arg.slice(at + 1) : arg;
  if (!/^[a-z_][a-z0-9_.-]{0,31}$/i.test(user))
    throw new Error(`login "${user}": must be a user name such as root or ubuntu (letters, digits, _ . -)`);
  if (!/^[a-z0-9][a-z0-9_.-]{0,252}$/i.test(node))
    throw new Error(`node "${node}": must be a node name as 'discovery get nodes' lists it`);
  return { user, node };
}

/**
 * Where to connect when `--address` does not say: a verified address among the host certificate's
 * principals (the join records the instance's addresses the cloud confirmed), IPs first.
 */
export function nodeAddress(node: NodeRecord): string | undefined {
  const others = node.principals.filter((p) => p !== node.name);
  return others.find((p) => isIP(p) !== 0) ?? others[0];
}

/** The 127.0.0.1 port of a sandbox VM's sshd, found by the node's instance id. */
async function sandboxPort(dir: string, node: NodeRecord): Promise<number> {
  const state = readSandboxState(dir);
  if (!state)
    throw new Error(`--sandbox ${dir}: no sandbox runs there; start one with 'discovery sandbox start --dir ${dir}'`);
  const id = node.labels[INSTANCE_ID_LABEL];
  const a = await callControl(state, "GET", "/v1/instances");
  const all = [...(a.body.instances ?? []), ...(a.body.gcp ?? []), ...(a.body.azure ?? [])] as {
    instanceId?: string;
    id?: string;
    sshPort?: number;
    ssh_port?: number;
  }[];
  const vm = all.find((v) => (v.instanceId ?? v.id) === id);
  const port = vm?.sshPort ?? vm?.ssh_port;
  if (!port)
    throw new Error(
      `--sandbox ${dir}: node ${node.name} (instance ${id ?? "unknown"}) has no sshd in this sandbox; ` +
        "agentless instances have one ('sandbox launch --agentless')",
    );
  return port;
}

/** Files of one login: an ephemeral key, its user certificate and a known_hosts trusting the host CA for this node. */
async function loginFiles(t: RuntimeTarget, node: string, user: string, ttl: string, dir: string) {
  const keys = newEd25519KeyPair(`discovery ssh ${user}@${node}`);
  const key = path.join(dir, "id_ed25519");
  fs.writeFileSync(key, keys.privateKey, { mode: 0o600 });
  const cert = await request(t, "POST", "/v1/certs/user", { public_key: keys.publicKey, principals: [user], ttl });
  if (cert.status !== 200) throw new Error(`a user certificate for ${user}: ${answerError(cert, t)}`);
  fs.writeFileSync(`${key}-cert.pub`, (cert.body as { certificate: string }).certificate.trim() + "\n");
  const cas = await request(t, "GET", "/v1/cas");
  if (cas.status !== 200) throw new Error(`the host CA: ${answerError(cas, t)}`);
  const hostKeys = (cas.body as { host: { public_keys: string[] } }).host.public_keys;
  const knownHosts = path.join(dir, "known_hosts");
  fs.writeFileSync(knownHosts, hostKeys.map((k) => `@cert-authority ${node} ${k}`).join("\n") + "\n");
  return { key, cert: `${key}-cert.pub`, knownHosts };
}

/** `discovery ssh [user@]NODE [command...]`: log in with a short-lived user certificate, the host certificate checked. */
export function sshCommand(): Command {
  return withTarget(
    new Command("ssh")
      .description(
        "log in to a node with a short-lived user certificate from the runtime; the node must present a host " +
          "certificate of the runtime's host CA for its name (no trust on first use)",
      )
      .argument(
        "<target>",
        "[user@]NODE: the login (default: your user name) and a node name from 'discovery get nodes'",
      )
      .argument("[command...]", "a command to run instead of a shell")
      .option(
        "--address <host>",
        "where the node's sshd is (default: the first verified address in its host certificate)",
      )
      .option("-p, --port <port>", "the node's sshd port", "22")
      .option("--sandbox <dir>", "a sandbox's node: connect to its sshd on 127.0.0.1 at the port the sandbox gave it")
      .option("--ttl <duration>", "lifetime of the user certificate", "5m")
      .option(
        "--print",
        "write the key, certificate and known_hosts to a new directory and print the ssh line instead",
      ),
  ).action(async (targetArg: string, command: string[], opts) => {
    const { user, node } = parseSshTarget(targetArg, os.userInfo().username);
    if (!/^\d+$/.test(opts.port) || +opts.port < 1 || +opts.port > 65535)
      throw new Error(`--port ${opts.port}: must be a TCP port (1-65535)`);
    if (spawnSync("ssh", ["-V"], { stdio: "ignore" }).error)
      throw new Error("ssh: not found on PATH; install the OpenSSH client (Debian: apt-get install openssh-client)");
    const t = target(opts);
    const a = await request(t, "GET", `/v1/nodes/${encodeURIComponent(node)}`);
    if (a.status === 404)
      throw new Error(`node ${node}: not found in ${t.server}; 'discovery get nodes' lists the nodes`);
    if (a.status !== 200) throw new Error(`node ${node}: ${answerError(a, t)}`);
    const record = a.body as NodeRecord;
    let address: string | undefined = opts.address;
    let port = Number(opts.port);
    if (opts.sandbox) {
      address = opts.address ?? "127.0.0.1";
      port = await sandboxPort(opts.sandbox, record);
    }
    address ??= nodeAddress(record);
    if (!address) throw new Error(`node ${node}: its host certificate names no address; pass --address HOST`);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "discovery-ssh-"));
    const files = await loginFiles(t, node, user, opts.ttl, dir).catch((err) => {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    });
    const args = [
      ...["-i", files.key, "-o", `CertificateFile=${files.cert}`, "-o", "IdentitiesOnly=yes"],
      ...["-o", `UserKnownHostsFile=${files.knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null"],
      ...["-o", "StrictHostKeyChecking=yes", "-o", `HostKeyAlias=${node}`, "-p", String(port)],
      `${user}@${address}`,
      ...(command.length ? ["--", ...command] : []),
    ];
    if (opts.print) {
      process.stdout.write(
        `${["ssh", ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : shellQuote(a))).join(" ")}\n`,
      );
      process.stderr.write(`key, certificate (valid ${opts.ttl}) and known_hosts in ${dir}; delete it when done\n`);
      return;
    }
    const code = await new Promise<number>((resolve) => {
      const child = spawn("ssh", args, { stdio: "inherit" });
      child.on("exit", (c, signal) => resolve(c ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
    });
    fs.rmSync(dir, { recursive: true, force: true });
    // ssh's own status: the remote command's, or 255 when the connection or the host check failed.
    process.exitCode = code;
  });
}
