import { execFileSync } from "child_process";
import * as fs from "fs";
import { Command, Option } from "commander";
import { cloudJoinMethods } from "../clouds";
import { answerError, request, RuntimeTarget } from "../http/client";
import { caSource } from "./admin";
import { checkJoinFiles, installSshdConfig } from "./join-files";

/** Options of `discovery join`. */
export interface JoinOptions {
  /** `token`, or a join method of a registered cloud (ec2, iam, ...). */
  method: string;
  token: string;
  server: string;
  caCert?: string;
  opensshConfig?: string;
  restartSshd?: boolean;
  hostKey?: string;
  dataDir: string;
  stsEndpoint?: string;
}

/**
 * Joins this machine: checks every path first (a join is used once, so a bad path must not spend it), proves the
 * identity with the method, then installs the host certificate and CA keys.
 */
export async function joinNode(o: JoinOptions): Promise<{ nodeName: string; files: string[] }> {
  const target: RuntimeTarget = {
    server: o.server,
    caFile: o.caCert,
    sources: {
      server: { from: "--server", fix: "pass --server with the runtime's public_addr" },
      ca: caSource(o.caCert),
    },
  };
  const files = checkJoinFiles(o);
  const body: Record<string, unknown> = { method: o.method, token: o.token, host_public_key: files.hostPublicKey };
  const method = o.method === "token" ? undefined : cloudJoinMethods()[o.method];
  if (method) {
    let challenge: string | undefined;
    if (method.needsChallenge) {
      const c = await request(target, "POST", "/v1/join/challenge", { method: o.method, token: o.token });
      if (c.status !== 200) throw new Error(`the runtime refused a challenge: ${answerError(c)}`);
      challenge = (c.body as { challenge: string }).challenge;
      // The service consumes it from the request; the method's proof also carries it (signed, or as a nonce).
      body.challenge = challenge;
    }
    const clusterName = async () => {
      const ping = await request(target, "GET", "/webapi/ping");
      const cluster = (ping.body as { cluster_name?: unknown } | undefined)?.cluster_name;
      if (ping.status !== 200 || typeof cluster !== "string")
        throw new Error(`the runtime's ping failed: ${answerError(ping)}`);
      return cluster;
    };
    Object.assign(body, await method.nodeFields({ challenge, stsEndpoint: o.stsEndpoint, clusterName }));
  }
  const a = await request(target, "POST", "/v1/join", body);
  if (a.status !== 200) throw new Error(`the runtime refused the join: ${answerError(a)}`);
  const r = a.body as {
    node_name: string;
    host_certificate: string;
    host_ca_public_keys: string[];
    user_ca_public_keys: string[];
  };
  fs.writeFileSync(files.cert, r.host_certificate + "\n", { mode: 0o644 });
  fs.writeFileSync(files.userCa, r.user_ca_public_keys.join("\n") + "\n", { mode: 0o644 });
  fs.writeFileSync(files.knownHosts, r.host_ca_public_keys.map((k) => `@cert-authority * ${k}`).join("\n") + "\n");
  fs.writeFileSync(files.node, r.node_name + "\n");
  const written = [files.cert, files.userCa, files.knownHosts, files.node];
  if (files.sshdConfig) {
    try {
      installSshdConfig(files);
    } catch (err) {
      // The join is spent by now: say what was written, so the operator finishes by hand instead of rejoining.
      throw new Error(`joined as ${r.node_name} and wrote ${written.join(", ")}, but ${(err as Error).message}`);
    }
    written.push(files.sshdConfig);
    if (o.restartSshd) restartSshd();
  }
  return { nodeName: r.node_name, files: written };
}

function restartSshd(): void {
  const custom = process.env.DISCOVERY_SSHD_RESTART;
  const tries = custom
    ? [["sh", "-c", custom]]
    : [
        ["systemctl", "restart", "ssh"],
        ["systemctl", "restart", "sshd"],
        ["service", "ssh", "restart"],
      ];
  for (const [cmd, ...args] of tries) {
    try {
      execFileSync(cmd, args, { stdio: "ignore" });
      return;
    } catch {
      // try the next way
    }
  }
  throw new Error("could not restart sshd; set DISCOVERY_SSHD_RESTART to the command that does");
}

/** `discovery join`: the node side of SPEC §4, for machines with Node.js. */
export function joinCommand(): Command {
  return new Command("join")
    .description("join this machine to the runtime without shared secrets (node side)")
    .addOption(
      new Option("--method <method>", "join method")
        .choices(["token", ...Object.keys(cloudJoinMethods()).sort()])
        .makeOptionMandatory(),
    )
    .requiredOption("--token <name>", "the token's name")
    .requiredOption("--server <url>", "the runtime's public https URL")
    .option("--openssh-config <path>", "agentless: sshd_config to point at the host certificate and user CA")
    .option("--restart-sshd", "restart sshd after editing its config")
    .option("--host-key <path>", "host private key to certify (made if missing)")
    .option("--data-dir <dir>", "where credentials are written", "/var/lib/discovery")
    .option("--ca-cert <file>", "CA certificate for the runtime's TLS (or NODE_EXTRA_CA_CERTS)")
    .option(
      "--sts-endpoint <url>",
      "iam: the STS endpoint to sign for (default AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL)",
    )
    .action(async (opts) => {
      const r = await joinNode(opts as JoinOptions);
      process.stdout.write(`joined as ${r.nodeName}\n${r.files.map((f) => `  wrote ${f}`).join("\n")}\n`);
    });
}
