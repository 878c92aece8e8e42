import { spawnSync } from "child_process";
import { createHmac } from "crypto";
import * as fs from "fs";
import * as path from "path";

/**
 * The installer computes HMAC-SHA256 in shell (keys never in a command's arguments). Its functions are cut out of
 * the script as shipped and run under sh and bash against RFC 4231's vectors and AWS's SigV4 example.
 */
const SCRIPT = fs.readFileSync(path.join(__dirname, "../../provider/runtime/installers/installer.sh"), "utf8");
const FUNCTIONS = /^# begin hmac.*?^# end hmac$/ms.exec(SCRIPT)?.[0] ?? "";

/** Runs `call` after the installer's hmac functions, under `shell`, with `input` on stdin. */
function run(shell: string, call: string, input: Buffer | string = ""): string {
  const r = spawnSync(shell, ["-c", `${FUNCTIONS}\n${call}`], { input, encoding: "utf8" });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return r.stdout;
}

const hex = (b: Buffer) => b.toString("hex");

// RFC 4231 section 4, HMAC-SHA-256: [case, key, data, expected (case 5 is truncated to 128 bits)].
const RFC4231: [string, Buffer, Buffer, string][] = [
  [
    "1",
    Buffer.alloc(20, 0x0b),
    Buffer.from("Hi There"),
    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
  ],
  [
    "2 (key shorter than the output)",
    Buffer.from("Jefe"),
    Buffer.from("what do ya want for nothing?"),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  ],
  [
    "3 (binary data)",
    Buffer.alloc(20, 0xaa),
    Buffer.alloc(50, 0xdd),
    "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
  ],
  [
    "4",
    Buffer.from("0102030405060708090a0b0c0d0e0f10111213141516171819", "hex"),
    Buffer.alloc(50, 0xcd),
    "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
  ],
  ["5 (truncated)", Buffer.alloc(20, 0x0c), Buffer.from("Test With Truncation"), "a3b6167473100ee06e0c796c2955552b"],
  [
    "6 (key longer than a block)",
    Buffer.alloc(131, 0xaa),
    Buffer.from("Test Using Larger Than Block-Size Key - Hash Key First"),
    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
  ],
  [
    "7 (key and data longer than a block)",
    Buffer.alloc(131, 0xaa),
    Buffer.from(
      "This is a test using a larger than block-size key and a larger than block-size data. The key needs to " +
        "be hashed before being used by the HMAC algorithm.",
    ),
    "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
  ],
];

describe.each(["sh", "bash"])("the installer's HMAC-SHA256 under %s", (shell) => {
  it("the script has the functions", () => {
    expect(FUNCTIONS).toContain("hmac()");
  });

  it.each(RFC4231)("RFC 4231 test case %s", (_, key, data, expected) => {
    expect(run(shell, `hmac ${hex(key)}`, data).slice(0, expected.length)).toBe(expected);
  });

  it("agrees with Node's HMAC for keys of 0 to 130 bytes, on either side of the 64-byte block", () => {
    for (const n of [0, 1, 32, 63, 64, 65, 130]) {
      const key = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff));
      const data = Buffer.from(`message ${n} with a NUL \0 and a newline\n`);
      expect(run(shell, `hmac '${hex(key)}'`, data)).toBe(createHmac("sha256", key).update(data).digest("hex"));
    }
  });

  it("derives AWS's SigV4 example signing key (secret wJalr..., 20120215, us-east-1, iam)", () => {
    const out = run(
      shell,
      "signing_key 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' 20120215 us-east-1 iam aws4_request",
    );
    expect(out).toBe("f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
  });
});
