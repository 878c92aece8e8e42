/**
 * The boot script of a VM that runs the discovery runtime (EC2 user data, GCE startup-script): install Node and
 * the package, write the config and TLS certificate, fetch the secrets with the VM's identity, and run
 * `discovery serve` as the systemd service `discovery.service`. Safe to run again (GCE runs it on every boot).
 */
import { VM_PATHS } from "./runtime-config";
import { FETCH_SECRETS_JS } from "./fetch-secrets";
import { SECRET_BUNDLE_FIELDS } from "./keys";

/** Where the secret bundle lives and how the VM reads it. */
export type SecretSource =
  { source: "aws-ssm"; region: string; name: string } | { source: "gcp-secret-manager"; name: string };

/** What the boot script installs and writes. */
export interface BootstrapOptions {
  /** npm spec of the runtime package, e.g. `pulumi-discovery@0.1.0` or a tarball URL. */
  packageSpec: string;
  /** Node.js major version to install from nodejs.org, e.g. `22`. */
  nodeMajor: string;
  /** /etc/discovery/config.yaml. */
  configYaml: string;
  /** /etc/discovery/tls.crt (public). */
  tlsCert: string;
  /** The TLS public-key pin, checked by the script's own health check. */
  tlsPin: string;
  /** The port the runtime listens on. */
  port: number;
  /** Where the secrets come from. */
  secrets: SecretSource;
  /** Environment of the service, e.g. AWS_REGION. */
  serviceEnv?: Record<string, string>;
}

/** Where the script installs Node and the package. */
export const INSTALL_PREFIX = "/opt/discovery";
/** The systemd unit's path. */
export const UNIT_PATH = "/etc/systemd/system/discovery.service";

/** Which file each field of the secret bundle goes to. */
export const SECRET_FILES: Record<(typeof SECRET_BUNDLE_FIELDS)[number], string> = {
  tls_key: VM_PATHS.tlsKey,
  host_ca_key: VM_PATHS.hostCaKey,
  user_ca_key: VM_PATHS.userCaKey,
  admin_token: VM_PATHS.adminToken,
};

/** Quotes `value` for a POSIX shell. */
function q(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A quoted here-document writing `content` to `file`; refuses content holding the terminator line. */
function hereDoc(file: string, content: string, marker: string): string {
  if (content.split("\n").includes(marker)) throw new Error(`${file}: content holds the line ${marker}`);
  return `cat > ${file} <<'${marker}'\n${content.endsWith("\n") ? content : content + "\n"}${marker}`;
}

/** The systemd unit: `discovery serve` as the unprivileged user `discovery`, writing only under its data dir. */
export function systemdUnit(env: Record<string, string> = {}): string {
  const environment = Object.entries(env)
    .map(([k, v]) => `Environment=${k}=${v}\n`)
    .join("");
  return `[Unit]
Description=pulumi-discovery runtime (discovery serve)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=discovery
Group=discovery
${environment}ExecStart=${INSTALL_PREFIX}/node/bin/node ${INSTALL_PREFIX}/bin/discovery serve --config ${VM_PATHS.config}
Restart=on-failure
RestartSec=5
AmbientCapabilities=CAP_NET_BIND_SERVICE
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
ReadWritePaths=${VM_PATHS.dataDir}

[Install]
WantedBy=multi-user.target
`;
}

/** The boot script (bash). */
export function bootstrapScript(o: BootstrapOptions): string {
  const secretEnv = [
    `DISCOVERY_SECRETS_SOURCE=${q(o.secrets.source)}`,
    `DISCOVERY_SECRETS_NAME=${q(o.secrets.name)}`,
    ...(o.secrets.source === "aws-ssm" ? [`DISCOVERY_SECRETS_REGION=${q(o.secrets.region)}`] : []),
    `DISCOVERY_SECRET_FILES=${q(JSON.stringify(SECRET_FILES))}`,
  ];
  return `#!/bin/bash
# pulumi-discovery: installs Node.js and the discovery runtime, writes its config, certificate and secrets,
# and runs \`discovery serve\` as the systemd service discovery.service. Safe to run again.
set -euo pipefail
exec > >(tee -a /var/log/discovery-bootstrap.log) 2>&1
echo "discovery bootstrap: start $(date -u +%FT%TZ)"

NODE_MAJOR=${q(o.nodeMajor)}
PACKAGE=${q(o.packageSpec)}
PREFIX=${q(INSTALL_PREFIX)}
NODE="$PREFIX/node/bin/node"

# Node.js from nodejs.org (distribution packages are often older than the runtime needs), checksum verified.
if ! { [ -x "$NODE" ] && [ "$("$NODE" -p 'process.versions.node.split(".")[0]')" = "$NODE_MAJOR" ]; }; then
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "discovery bootstrap: unsupported architecture $(uname -m)" >&2; exit 1 ;;
  esac
  base="https://nodejs.org/dist/latest-v$NODE_MAJOR.x"
  tmp=$(mktemp -d)
  curl -fsSL --retry 5 "$base/SHASUMS256.txt" -o "$tmp/SHASUMS256.txt"
  file=$(grep -oE "node-v[0-9.]+-linux-$arch\\.tar\\.gz$" "$tmp/SHASUMS256.txt" | head -n 1)
  curl -fsSL --retry 5 "$base/$file" -o "$tmp/$file"
  (cd "$tmp" && grep "  $file\\$" SHASUMS256.txt | sha256sum -c -)
  rm -rf "$PREFIX/node" && mkdir -p "$PREFIX/node"
  tar -xzf "$tmp/$file" -C "$PREFIX/node" --strip-components=1
  rm -rf "$tmp"
fi

# The runtime package, reinstalled only when the spec changes.
if [ "$(cat "$PREFIX/.package" 2>/dev/null || true)" != "$PACKAGE" ]; then
  PATH="$PREFIX/node/bin:$PATH" "$PREFIX/node/bin/npm" install --global --prefix "$PREFIX" --no-fund --no-audit "$PACKAGE"
  printf '%s' "$PACKAGE" > "$PREFIX/.package"
fi
PACKAGE_DIR=$(dirname "$(dirname "$(readlink -f "$PREFIX/bin/discovery")")")

id -u discovery > /dev/null 2>&1 || useradd --system --home-dir ${VM_PATHS.dataDir} --shell /usr/sbin/nologin discovery
install -d -m 0750 -o root -g discovery ${VM_PATHS.configDir}
install -d -m 0750 -o discovery -g discovery ${VM_PATHS.dataDir}

${hereDoc(VM_PATHS.config, o.configYaml, "DISCOVERY_CONFIG_EOF")}
${hereDoc(VM_PATHS.tlsCert, o.tlsCert, "DISCOVERY_CERT_EOF")}
chown root:discovery ${VM_PATHS.config} ${VM_PATHS.tlsCert}
chmod 0640 ${VM_PATHS.config}
chmod 0644 ${VM_PATHS.tlsCert}

# The TLS key, SSH CA keys and admin token: fetched with the VM's own identity, never in this script.
${hereDoc(`${INSTALL_PREFIX}/fetch-secrets.js`, FETCH_SECRETS_JS, "DISCOVERY_FETCH_EOF")}
env ${secretEnv.join(" \\\n  ")} \\
  DISCOVERY_PACKAGE_DIR="$PACKAGE_DIR" DISCOVERY_UID="$(id -u discovery)" DISCOVERY_GID="$(id -g discovery)" \\
  "$NODE" "$PREFIX/fetch-secrets.js"

${hereDoc(UNIT_PATH, systemdUnit(o.serviceEnv), "DISCOVERY_UNIT_EOF")}
systemctl daemon-reload
systemctl enable discovery.service
systemctl restart discovery.service

# Ready when /readyz answers over TLS with the deployed certificate's key.
for _ in $(seq 1 90); do
  if curl -fsS -k --pinnedpubkey ${q(o.tlsPin)} https://127.0.0.1:${o.port}/readyz > /dev/null 2>&1; then
    echo "discovery bootstrap: runtime ready on port ${o.port}"
    exit 0
  fi
  sleep 2
done
echo "discovery bootstrap: the runtime did not become ready; see journalctl -u discovery" >&2
exit 1
`;
}
