import { nodeAddress, parseSshTarget } from "../../provider/cli/ssh";

describe("discovery ssh: target and address", () => {
  it("splits [user@]NODE, the login defaulting to the caller's", () => {
    expect(parseSshTarget("ubuntu@123456789012-i-0abc", "me")).toEqual({ user: "ubuntu", node: "123456789012-i-0abc" });
    expect(parseSshTarget("gcp-proj-1-vm.zone", "me")).toEqual({ user: "me", node: "gcp-proj-1-vm.zone" });
  });

  it.each([
    ["-oProxyCommand=sh@node", 'login "-oProxyCommand=sh"'],
    ["root;id@node", 'login "root;id"'],
    ["root@-oProxyCommand=x", 'node "-oProxyCommand=x"'],
    ["root@node name", 'node "node name"'],
    ["root@", 'node ""'],
  ])("refuses %s, naming the part", (arg, part) => {
    expect(() => parseSshTarget(arg, "me")).toThrow(part);
  });

  it("connects to a verified address from the host certificate's principals, IPs before names", () => {
    const node = (principals: string[]) => ({ name: "n1", labels: {}, principals: ["n1", ...principals] });
    expect(nodeAddress(node(["ip-10-0-0-5.ec2.internal", "10.0.0.5"]))).toBe("10.0.0.5");
    expect(nodeAddress(node(["vm.internal"]))).toBe("vm.internal");
    expect(nodeAddress(node([]))).toBeUndefined();
  });
});
