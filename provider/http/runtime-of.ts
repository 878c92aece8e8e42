import * as fs from "fs";
import * as path from "path";
import type { RuntimeConfig } from "../runtime/config";
import { describeCertificate } from "../runtime/tls";
import type { RuntimeTarget } from "./client";

/**
 * The runtime a config names: its URL, admin token, TLS certificate and public-key pin, each with the config
 * field it came from, so a failed call says which line of the file to fix.
 */
export function runtimeOf(config: RuntimeConfig) {
  const file = config.file ?? "the runtime config";
  const certFile = config.tls?.certFile ?? path.join(config.dataDir, "tls.crt");
  const certFrom = config.tls ? `the tls.cert_file of ${file}` : `the certificate the runtime made beside its store`;
  if (!fs.existsSync(certFile))
    throw new Error(
      `${certFile} (${certFrom}) does not exist: ` +
        (config.tls ? `fix tls.cert_file in ${file}` : `start the runtime first (discovery serve --config ${file})`),
    );
  if (!fs.existsSync(config.adminTokenFile))
    throw new Error(
      `${config.adminTokenFile} (admin_token_file in ${file}) does not exist: start the runtime first ` +
        `(discovery serve --config ${file}; it makes the file), or fix admin_token_file`,
    );
  const target: RuntimeTarget = {
    server: config.publicAddr,
    adminToken: fs.readFileSync(config.adminTokenFile, "utf8").trim(),
    caFile: certFile,
    sources: {
      server: { from: `public_addr in ${file}`, fix: `fix public_addr in ${file}` },
      adminToken: {
        from: `${config.adminTokenFile} (admin_token_file in ${file})`,
        fix: `check that ${file} is the config of the runtime at ${config.publicAddr}, and that no other runtime took its port`,
      },
      ca: {
        from: `${certFile} (${certFrom})`,
        fix: `check that ${file} is the config of the runtime at ${config.publicAddr}, and that no other runtime took its port`,
      },
    },
  };
  return {
    target,
    endpoint: {
      proxyAddr: config.publicHostPort,
      caPin: describeCertificate(fs.readFileSync(certFile, "utf8")).publicKeyPin,
    },
  };
}
