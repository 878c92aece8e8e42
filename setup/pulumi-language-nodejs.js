#!/usr/bin/env node
// @ts-check
/*
 * Stand-in for Pulumi's Go Node.js language host, used when the Go module proxy
 * cannot serve github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3
 * (see docs/SETUP.md). It speaks the same gRPC LanguageRuntime protocol the CLI
 * expects and starts programs exactly as the Go host does: `node
 * @pulumi/pulumi/cmd/run --monitor ... <entry point>`, with config in
 * PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS. Only what the engine needs for
 * preview/up/destroy/refresh of Node programs and for running Node policy packs
 * (RunPlugin) is implemented; the rest answers UNIMPLEMENTED, which the CLI tolerates.
 */
"use strict";
const path = require("path");

const childProcess = require("child_process");

// The gRPC stubs ship with @pulumi/pulumi; resolve them next to this script's repo.
const sdkDir = path.dirname(require.resolve("@pulumi/pulumi/package.json", { paths: [path.join(__dirname, "..")] }));
const grpc = require(require.resolve("@grpc/grpc-js", { paths: [sdkDir] }));
const langRpc = require(path.join(sdkDir, "proto", "language_grpc_pb.js"));
const langProto = require(path.join(sdkDir, "proto", "language_pb.js"));
const pluginProto = require(path.join(sdkDir, "proto", "plugin_pb.js"));
const SDK_VERSION = require(path.join(sdkDir, "package.json")).version;

// Exit code @pulumi/pulumi/cmd/run uses after it already printed an actionable message.
const EXIT_AFTER_USER_MESSAGE = 32;

const args = process.argv.slice(2).filter((a) => !a.startsWith("-"));
if (process.argv.includes("-version") || process.argv.includes("--version")) {
  process.stdout.write(`${SDK_VERSION}\n`);
  process.exit(0);
}
let engineAddress = args[0] || "";
/** @type {Set<import("child_process").ChildProcess>} */
const children = new Set();

/** Resolve @pulumi/pulumi/cmd/run from the program's directory, as the Go host does. */
function locateRun(programDir) {
  const override = process.env.PULUMI_LANGUAGE_NODEJS_RUN_PATH;
  try {
    return require.resolve(override || "@pulumi/pulumi/cmd/run", { paths: [programDir] });
  } catch {
    throw new Error(`It looks like the Pulumi SDK has not been installed in ${programDir}. Have you run npm install?`);
  }
}

/** Old-style config keys (<pkg>:config:<name>) are what cmd/run reads. */
function configJson(req) {
  const out = {};
  req.getConfigMap().forEach((value, key) => {
    const idx = key.indexOf(":");
    const ns = idx < 0 ? key : key.slice(0, idx);
    const name = idx < 0 ? "" : key.slice(idx + 1).replace(/^config:/, "");
    out[`${ns}:config:${name}`] = value;
  });
  return JSON.stringify(out);
}

function unimplemented(callback) {
  callback({ code: grpc.status.UNIMPLEMENTED, message: "not implemented by this language host" });
}

const service = {
  handshake(call, callback) {
    engineAddress = call.request.getEngineAddress() || engineAddress;
    callback(null, new langProto.LanguageHandshakeResponse());
  },
  getRequiredPlugins(_call, callback) {
    callback(null, new langProto.GetRequiredPluginsResponse());
  },
  getRequiredPackages(_call, callback) {
    // Dynamic providers come from pulumi-resource-pulumi-nodejs on PATH; no plugin is downloaded.
    callback(null, new langProto.GetRequiredPackagesResponse());
  },
  getPluginInfo(_call, callback) {
    const info = new pluginProto.PluginInfo();
    info.setVersion(SDK_VERSION);
    callback(null, info);
  },
  about(_call, callback) {
    const res = new langProto.AboutResponse();
    res.setExecutable(process.execPath);
    res.setVersion(process.version);
    callback(null, res);
  },
  getProgramDependencies(_call, callback) {
    callback(null, new langProto.GetProgramDependenciesResponse());
  },
  runtimeOptionsPrompts(_call, callback) {
    callback(null, new langProto.RuntimeOptionsResponse());
  },
  installDependencies(call) {
    // Dependencies are installed by npm before pulumi runs; nothing to do here.
    call.end();
  },
  cancel(_call, callback) {
    for (const child of children) child.kill("SIGINT");
    callback(
      null,
      new (require(require.resolve("google-protobuf/google/protobuf/empty_pb.js", { paths: [sdkDir] })).Empty)(),
    );
  },
  runPlugin(call) {
    runPlugin(call);
  },
  run(call, callback) {
    const req = call.request;
    const info = req.getInfo();
    const programDir = (info && info.getProgramDirectory()) || req.getPwd() || process.cwd();
    const entryPoint = (info && info.getEntryPoint()) || req.getProgram() || ".";
    const options = (info && info.getOptions() && info.getOptions().toJavaScript()) || {};
    const res = new langProto.RunResponse();
    let runPath;
    try {
      runPath = locateRun(programDir);
    } catch (err) {
      res.setError(String(err.message));
      return callback(null, res);
    }
    const argv = [runPath];
    const add = (k, v) => {
      if (v !== undefined && v !== null && v !== "") argv.push(`--${k}`, String(v));
    };
    add("monitor", req.getMonitorAddress());
    add("engine", engineAddress);
    add("organization", req.getOrganization());
    add("project", req.getProject());
    add("root-directory", info && info.getRootDirectory());
    add("stack", req.getStack());
    add("pwd", programDir);
    if (req.getDryrun()) argv.push("--dry-run");
    add("parallel", req.getParallel());
    argv.push(entryPoint, ...req.getArgsList());
    const env = {
      ...process.env,
      PULUMI_CONFIG: configJson(req),
      PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(req.getConfigsecretkeysList()),
    };
    if (options.typescript !== false) env.PULUMI_NODEJS_TYPESCRIPT = "true";
    if (typeof options.tsconfig === "string") env.PULUMI_NODEJS_TSCONFIG_PATH = options.tsconfig;
    const nodeArgs = typeof options.nodeargs === "string" ? options.nodeargs.split(/\s+/).filter(Boolean) : [];
    const child = childProcess.spawn(process.execPath, [...nodeArgs, ...argv], {
      cwd: programDir,
      env,
      stdio: ["ignore", "inherit", "inherit"],
    });
    children.add(child);
    child.on("error", (err) => {
      children.delete(child);
      res.setError(`Problem executing program (could not run language executor): ${err.message}`);
      callback(null, res);
    });
    child.on("exit", (code, signal) => {
      children.delete(child);
      if (code === EXIT_AFTER_USER_MESSAGE) res.setBail(true);
      else if (code !== 0) res.setError(`Program exited with non-zero exit code: ${code ?? signal}`);
      callback(null, res);
    });
  },
};

// Flags the engine puts before a plugin's own arguments (logging and tracing); run-policy-pack parses its
// arguments with minimist, which would take the engine address as the value of a bare `--logtostderr`.
const ENGINE_FLAGS_WITH_VALUE = new Set(["--tracing"]);
function withoutEngineFlags(args) {
  const out = [];
  for (let i = 0; i < args.length; i++) {
    if (ENGINE_FLAGS_WITH_VALUE.has(args[i])) i++;
    else if (args[i] === "--logtostderr" || /^-v=\d+$/.test(args[i])) continue;
    else out.push(args[i]);
  }
  return out;
}

/** "K=V" strings (what the engine sends) as an environment object; the host's own when the engine sent none. */
function envOf(list) {
  if (list.length === 0) return { ...process.env };
  const env = {};
  for (const kv of list) {
    const i = kv.indexOf("=");
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

/**
 * RunPlugin: the engine runs Node plugins through the language host, policy packs (kind "analyzer") above all.
 * As the Go host does, it starts `@pulumi/pulumi/cmd/run-policy-pack <engine address> <pack dir>` (or
 * cmd/run-plugin for other kinds) resolved from the plugin's directory, with the plugin's directory as working
 * directory (PolicyPack reads its version from ./package.json), and streams the child's stdout, stderr and
 * finally its exit code back. The engine reads the analyzer's port from the streamed stdout.
 */
function runPlugin(call) {
  const req = call.request;
  const info = req.getInfo();
  const pluginDir = (info && info.getProgramDirectory()) || req.getPwd() || process.cwd();
  const options = (info && info.getOptions() && info.getOptions().toJavaScript()) || {};
  const send = (fill) => {
    const res = new langProto.RunPluginResponse();
    fill(res);
    call.write(res);
  };
  const fail = (message) => {
    send((r) => r.setStderr(Buffer.from(`${message}\n`)));
    send((r) => r.setExitcode(1));
    call.end();
  };
  const module = req.getKind() === "analyzer" ? "@pulumi/pulumi/cmd/run-policy-pack" : "@pulumi/pulumi/cmd/run-plugin";
  let runPath;
  try {
    runPath = require.resolve(module, { paths: [pluginDir] });
  } catch {
    return fail(
      `It looks like the Pulumi SDK has not been installed for the plugin in ${pluginDir}: ${module} is not resolvable ` +
        "from there. Run npm install in that directory (or the package that ships it).",
    );
  }
  const nodeArgs = typeof options.nodeargs === "string" ? options.nodeargs.split(/\s+/).filter(Boolean) : [];
  const pluginArgs = withoutEngineFlags(req.getArgsList());
  const argv = [...nodeArgs, runPath, ...pluginArgs, pluginDir];
  const env = envOf(req.getEnvList());
  if (options.typescript !== false) env.PULUMI_NODEJS_TYPESCRIPT = "true";
  if (typeof options.tsconfig === "string") env.PULUMI_NODEJS_TSCONFIG_PATH = options.tsconfig;
  const child = childProcess.spawn(process.execPath, argv, { cwd: pluginDir, env, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let finished = false;
  child.stdout.on("data", (chunk) => !finished && send((r) => r.setStdout(chunk)));
  child.stderr.on("data", (chunk) => !finished && send((r) => r.setStderr(chunk)));
  // The engine cancels the stream to stop the plugin.
  call.on("cancelled", () => {
    finished = true;
    child.kill("SIGINT");
  });
  child.on("error", (err) => {
    if (finished) return;
    finished = true;
    children.delete(child);
    fail(`could not run ${module}: ${err.message}`);
  });
  child.on("close", (code, signal) => {
    children.delete(child);
    if (finished) return;
    finished = true;
    send((r) => r.setExitcode(code ?? (signal ? 128 : 1)));
    call.end();
  });
}

const handlers = {};
for (const name of Object.keys(langRpc.LanguageRuntimeService)) {
  const key = name.charAt(0).toLowerCase() + name.slice(1);
  handlers[key] =
    service[key] ||
    ((call, callback) => (callback ? unimplemented(callback) : call.destroy({ code: grpc.status.UNIMPLEMENTED })));
}

const server = new grpc.Server();
server.addService(langRpc.LanguageRuntimeService, handlers);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`could not start language host RPC server: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${port}\n`);
});
const stop = () => {
  for (const child of children) child.kill("SIGINT");
  server.tryShutdown(() => process.exit(0));
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
