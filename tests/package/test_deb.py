#!/usr/bin/python3
"""The Debian package, end to end (issue 17): builds vigil_<version>_amd64.deb
from this tree with Debian's tools (dpkg-buildpackage: debhelper with meson),
runs lintian on it (no errors), installs it with apt into a clean Debian 12
root (the fresh-machine tool's pristine debootstrap root, under an overlay,
so that nothing of this machine's installs is there), starts vigild the way
vigil.service does (its ExecStart, as its User and Group, with its
RuntimeDirectory and UMask, the packaged /etc/vigil/vigil.yaml and the tokens
postinst generated) in a network namespace of its own, streams one packaged
vigil-sentinel into it, gets /health 200 and the sentinel's session listed,
then purges the package and checks what is left: the recordings and the
vigil user stay, unless the purge runs with VIGIL_PURGE_RECORDINGS=yes.

Needs root (chroot, mounts, a network namespace): exits 77 (skipped)
otherwise. The .deb's dependencies come from Debian's mirror; they are kept
in /var/tmp/vigil-apt-cache between runs (first filled with hard links of
this machine's own apt cache). Ends with "N passed, M failed" over its steps
and the seconds each took (docs/install.md, "Testing the package")."""
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SOURCE = os.path.abspath(os.environ.get("VIGIL_SOURCE_DIR") or
                         os.path.join(os.path.dirname(__file__), "..", ".."))
LOGS = os.environ.get("VIGIL_TEST_LOGS") or os.path.join(
    os.environ.get("VIGIL_BUILD_DIR") or os.path.join(SOURCE, "build"), "test-logs")
FRESH = os.path.join(SOURCE, "..", "shared", "tools", "fresh-machine")
FRESH_CACHE = os.environ.get("FRESH_CACHE", "/var/tmp/fresh-machine")
OWN_CACHE = "/var/tmp/vigil-deb-root"      # when the fresh-machine tool is not there
APT_CACHE = "/var/tmp/vigil-apt-cache"
LAYERS = "/var/tmp/vigil-deb-layers"     # the package's dependencies installed, by Depends
ROLES = ("sentinel", "proctor", "archivist", "operator")
CHROOT_ENV = ["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
              "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"]

passed, failed, timings = 0, 0, []


def log(msg):
    print(msg, flush=True)


def run(cmd, check=True, timeout=600, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(cmd), res.returncode,
                                                   res.stdout[-3000:], res.stderr[-3000:]))
    return res


def until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %d s waiting for %s" % (timeout, what))
        time.sleep(0.2)


def step(name, fn):
    """Runs one step; a failure ends the run (later steps need the earlier)."""
    global passed, failed
    t0 = time.monotonic()
    try:
        note = fn()
    except Exception as e:  # noqa: BLE001 - every failure is reported the same way
        failed += 1
        timings.append((name, time.monotonic() - t0))
        log("FAIL %s (%.1f s): %s" % (name, time.monotonic() - t0, e))
        raise
    passed += 1
    timings.append((name, time.monotonic() - t0))
    log("ok   %s (%.1f s)%s" % (name, time.monotonic() - t0, ": " + note if note else ""))


def mounts_under(path):
    """Mount points at or below path, deepest first."""
    path = os.path.realpath(path).rstrip("/")
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            m = line.split()[4].replace("\\040", " ")
            if m == path or m.startswith(path + "/"):
                out.append(m)
    return sorted(out, key=lambda m: m.count("/"), reverse=True)


def safe_rm(path):
    """rm -rf that never reaches into a mount (a root's bind-mounted /dev):
    what is mounted below path is unmounted first, and rm stays on one
    file system."""
    if not os.path.lexists(path):
        return
    for m in mounts_under(path):
        if run(["umount", "-R", m], check=False).returncode != 0:
            run(["umount", "-R", "-l", m], check=False)
    if mounts_under(path):
        raise AssertionError("mounts left under %s: not removing it" % path)
    run(["rm", "-rf", "--one-file-system", path])


def fresh_base():
    """The pristine Debian 12 root and a shared lock on it (a make-root.sh
    --force waits until this run is done with it)."""
    if os.path.isfile(os.path.join(FRESH, "make-root.sh")):
        lockfile, base = os.path.join(FRESH_CACHE, ".lock"), os.path.join(FRESH_CACHE, "base")
        # make-root.sh takes its lock alone even to say "cached", which waits
        # for every fresh-machine run under way: only when there is no root.
        if not os.path.isfile(os.path.join(base, ".fresh-root-complete")):
            run(["bash", os.path.join(FRESH, "make-root.sh"), FRESH_CACHE], timeout=1800)
    else:
        base = os.path.join(OWN_CACHE, "base")
        lockfile = os.path.join(OWN_CACHE, ".lock")
        os.makedirs(OWN_CACHE, exist_ok=True)
        with open(lockfile, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            if not os.path.exists(os.path.join(base, ".complete")):
                safe_rm(base + ".tmp")
                run(["debootstrap", "--variant=minbase", "--include=ca-certificates",
                     "bookworm", base + ".tmp", mirror()], timeout=1800)
                open(os.path.join(base + ".tmp", ".complete"), "w").close()
                os.rename(base + ".tmp", base)
    lock = open(lockfile, "a")
    fcntl.flock(lock, fcntl.LOCK_SH)
    if not glob.glob(os.path.join(base, ".*complete")):
        lock.close()
        raise AssertionError("no pristine root in %s (being rebuilt?)" % base)
    return base, lock


class Root:
    """A Debian 12 root: an overlay over lowers (the pristine root, and the
    layer of the package's dependencies), /proc and /dev mounted, a /dev/shm
    of its own (the packaged config's instance is "default": never the
    host's ring), Debian's packages from a cache kept between runs."""

    def __init__(self, top, lowers):
        self.top = top
        self.path = os.path.join(top, "root")
        self.lowers = lowers
        self.mounts = []
        self.netns = None
        self.started = set()  # pids of processes the test started in the root

    def mount(self, *args):
        run(["mount"] + list(args))
        self.mounts.append(args[-1])

    def open(self, copy=False):
        """copy: a copy of the one lower instead of an overlay (where
        overlayfs is refused: inside another overlay, as in the
        fresh-machine tool's own root)."""
        for d in ("root", "upper", "overlay-work"):
            os.makedirs(os.path.join(self.top, d))
        if copy:
            run(["cp", "-a", "--reflink=auto", self.lowers[-1] + "/.", self.path + "/"])
        else:
            self.mount("-t", "overlay", "vigil-deb", "-o", "lowerdir=%s,upperdir=%s,workdir=%s" % (
                ":".join(self.lowers), os.path.join(self.top, "upper"),
                os.path.join(self.top, "overlay-work")), self.path)
        self.mount("-t", "proc", "proc", self.file("/proc"))
        self.mount("--rbind", "/dev", self.file("/dev"))
        run(["mount", "--make-rslave", self.file("/dev")])
        self.mount("-t", "tmpfs", "-o", "size=1g,mode=1777", "vigil-deb-shm", self.file("/dev/shm"))
        shutil.copyfile("/etc/resolv.conf", self.file("/etc/resolv.conf"))
        # Package scripts start no services here (the fresh root has this too).
        with open(self.file("/usr/sbin/policy-rc.d"), "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(self.file("/usr/sbin/policy-rc.d"), 0o755)
        # No fsync per file while unpacking: the root is thrown away.
        with open(self.file("/etc/dpkg/dpkg.cfg.d/unsafe-io"), "w") as f:
            f.write("force-unsafe-io\n")
        # Debian's packages, kept between runs; seeded from this machine's cache.
        os.makedirs(os.path.join(APT_CACHE, "partial"), exist_ok=True)
        run(["sh", "-c", "cp -l -n /var/cache/apt/archives/*.deb %s/ 2>/dev/null; true" % APT_CACHE])
        self.mount("--bind", APT_CACHE, self.file("/var/cache/apt/archives"))
        return self

    def netns_up(self):
        self.netns = "vigil-deb-%d" % os.getpid()
        run(["ip", "netns", "add", self.netns])
        run(["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"])

    def file(self, p):
        return os.path.join(self.path, p.lstrip("/"))

    def sh(self, script, check=True, timeout=600, env=()):
        return run(["chroot", self.path] + CHROOT_ENV + list(env) + ["sh", "-ec", script],
                   check=check, timeout=timeout)

    def apt(self, script, timeout=900):
        """apt in this root, one apt at a time on the shared package cache."""
        with open(os.path.join(APT_CACHE, ".vigil-lock"), "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            return self.sh(script, timeout=timeout)

    def pids(self):
        """The processes in this root: by their root directory, and every
        descendant of a process the test started in it (self.started), as
        /proc/PID/root does not always name the root the same way when the
        test itself runs in a chroot (the fresh-machine check)."""
        out, parent = set(), {}
        for d in glob.glob("/proc/[0-9]*"):
            pid = int(os.path.basename(d))
            try:
                if os.readlink(d + "/root").startswith(self.path):
                    out.add(pid)
                with open(d + "/stat") as f:
                    parent[pid] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
        for pid in parent:
            p, seen = pid, 0
            while p > 1 and seen < 64:
                if p in self.started:
                    out.add(pid)
                    break
                p, seen = parent.get(p, 0), seen + 1
        return sorted(out)

    def close(self):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            try:
                until(lambda: not self.pids(), 10, "the root's processes to end")
                break
            except AssertionError:
                continue
        if self.netns:
            run(["ip", "netns", "del", self.netns], check=False)
        for m in reversed(self.mounts):
            if run(["umount", "-R", m], check=False).returncode != 0:
                run(["umount", "-R", "-l", m], check=False)
        self.mounts = []


def deps_layer(base, depends):
    """An overlay layer over base with the package's dependencies installed
    (apt-get satisfy of its Depends field, nothing else), kept between runs
    in LAYERS: unpacking some 350 packages costs a minute or more on two
    cores, the package itself a second. Rebuilt when the Depends field or
    the base changes, and every week (security updates). Returns the
    layer's directory (None without one), what was done, and a lock that
    keeps the layer from being pruned by another run while it is in use."""
    if os.environ.get("VIGIL_DEB_NO_OVERLAY"):  # to try the way without overlayfs
        return None, "not made: VIGIL_DEB_NO_OVERLAY", None
    stamp = ""
    for f in (os.path.join(base, ".fresh-root-complete"), os.path.join(base, ".complete")):
        if os.path.exists(f):
            stamp = open(f).read()
    key = hashlib.sha256(("%s\n%s\n%s\n%s" % (depends, base, stamp, time.strftime("%G-%V"))
                          ).encode()).hexdigest()[:16]
    layer = os.path.join(LAYERS, key)
    os.makedirs(LAYERS, exist_ok=True)
    def use(path):
        lock = open(os.path.join(path, "complete"), "a")
        fcntl.flock(lock, fcntl.LOCK_SH)
        return lock

    with open(os.path.join(LAYERS, ".lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(layer, "complete")):
            return os.path.join(layer, "upper"), "cached", use(layer)
        for old in glob.glob(os.path.join(LAYERS, "*")):
            # Not one another run is using (a worktree with other Depends).
            try:
                with open(os.path.join(old, "complete"), "a") as busy:
                    fcntl.flock(busy, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    safe_rm(old)
            except OSError:
                if not os.path.exists(os.path.join(old, "complete")):
                    safe_rm(old)  # a half-made one
        tmp = Root(layer + ".tmp", [base])
        try:
            try:
                tmp.open()
            except AssertionError:
                tmp.close()
                safe_rm(layer + ".tmp")
                return None, "not made: overlayfs refused here", None
            tmp.apt("apt-get update -q && apt-get satisfy -y -q --no-install-recommends '%s'"
                    % depends.replace("'", ""))
        finally:
            tmp.close()
        os.rename(layer + ".tmp", layer)
        open(os.path.join(layer, "complete"), "w").close()
        return os.path.join(layer, "upper"), "made", use(layer)


def mirror():
    """The host's Debian mirror (the fallback root's)."""
    for path in glob.glob("/etc/apt/sources.list.d/*.sources") + ["/etc/apt/sources.list"]:
        try:
            text = open(path).read()
        except OSError:
            continue
        m = re.search(r"^URIs:\s*(\S+)", text, re.M) or re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\b", text, re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def unit_settings(text):
    """{key: value} of vigil.service's [Service] (the last of each key)."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k] = v
    return out


def main():
    global failed
    if os.geteuid() != 0:
        log("skip: needs root (chroot, mount, a network namespace)")
        return 77
    version = run(["dpkg-parsechangelog", "-S", "Version", "-l",
                   os.path.join(SOURCE, "debian", "changelog")]).stdout.strip()
    work = tempfile.mkdtemp(prefix="vigil-deb-", dir="/var/tmp")
    os.chmod(work, 0o755)
    root = None
    deb = os.path.join(work, "vigil_%s_amd64.deb" % version)
    state = {}
    try:
        def build():
            meson = open(os.path.join(SOURCE, "meson.build")).read()
            mv = re.search(r"version\s*:\s*'([^']+)'", meson).group(1)
            if mv != version:
                raise AssertionError("debian/changelog says %s, meson.build %s" % (version, mv))
            dist = os.path.join(SOURCE, "httpd", "web", "dist", "index.html")
            if not os.path.isfile(dist):
                raise AssertionError("httpd/web/dist is not built (meson compile -C build first)")
            src = os.path.join(work, "vigil-" + version)
            os.makedirs(src)
            # The tree's files as git knows them (tracked, and new ones not
            # ignored); a copy without .git (the fresh-machine tool's) minus
            # what builds leave.
            git = run(["git", "-c", "safe.directory=*", "-C", SOURCE, "ls-files", "-z", "-co",
                       "--exclude-standard"], check=False) if shutil.which("git") else None
            if git is not None and git.returncode == 0:
                files = [f for f in git.stdout.split("\0")
                         if f and os.path.lexists(os.path.join(SOURCE, f))]
                tar = ["tar", "-C", SOURCE, "--null", "--no-recursion", "-T", "-", "-cf", "-"]
            else:
                files = []
                tar = ["tar", "-C", SOURCE, "--exclude=./build*", "--exclude=./obj-*",
                       "--exclude=node_modules", "--exclude=./httpd/web/dist", "--exclude=.git",
                       "--exclude=./debian/vigil", "--exclude=./debian/.debhelper", "-cf", "-", "."]
            pack = subprocess.Popen(tar, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            unpack = subprocess.Popen(["tar", "-C", src, "-xf", "-"], stdin=pack.stdout)
            pack.stdout.close()
            pack.stdin.write("\0".join(files).encode())
            pack.stdin.close()
            if pack.wait() != 0 or unpack.wait() != 0:
                raise AssertionError("copying the tree failed")
            shutil.copytree(os.path.dirname(dist), os.path.join(src, "httpd", "web", "dist"))
            res = run(["dpkg-buildpackage", "-b", "-uc", "-us", "-j2"], cwd=src, timeout=900,
                      check=False)
            with open(os.path.join(work, "build.log"), "w") as f:
                f.write(res.stdout + res.stderr)
            if res.returncode != 0:
                raise AssertionError("dpkg-buildpackage: exit %d\n%s" % (
                    res.returncode, (res.stdout + res.stderr)[-3000:]))
            if not os.path.isfile(deb):
                raise AssertionError("no %s" % os.path.basename(deb))
            return "%s, %d KiB" % (os.path.basename(deb), os.path.getsize(deb) // 1024)
        if os.environ.get("VIGIL_DEB"):  # a .deb built before, to try the rest again
            shutil.copy(os.environ["VIGIL_DEB"], deb)
        else:
            step("dpkg-buildpackage builds %s" % os.path.basename(deb), build)

        def lint():
            # lintian warns when run as root: as nobody, on a copy nobody can read,
            # from that copy's directory (the build directory may be under /root,
            # which nobody cannot enter, as on a fresh machine).
            cmd = ["lintian", "--fail-on", "error", "--no-tag-display-limit", deb]
            if os.geteuid() == 0:
                cmd = ["runuser", "-u", "nobody", "--"] + cmd
            res = run(cmd, check=False, timeout=300, cwd=work)
            tags = [ln for ln in (res.stdout + res.stderr).splitlines() if re.match(r"^[EW]: ", ln)]
            if res.returncode != 0 or any(t.startswith("E: ") for t in tags):
                raise AssertionError("lintian: exit %d\n%s" % (res.returncode, res.stdout + res.stderr))
            # The warnings docs/install.md names and justifies, and no other.
            others = [t for t in tags if not re.match(r"^W: vigil: no-manual-page \[usr/bin/vigil", t)]
            if others:
                raise AssertionError("lintian warnings not in docs/install.md:\n" + "\n".join(others))
            return "no error; %d warnings, all no-manual-page" % len(tags)
        step("lintian: no error", lint)

        def clean_root():
            nonlocal root
            t0 = time.monotonic()
            base, state["base_lock"] = fresh_base()
            t1 = time.monotonic()
            depends = run(["dpkg-deb", "-f", deb, "Depends"]).stdout.strip()
            layer, how, state["layer_lock"] = deps_layer(base, depends)
            if layer:
                root = Root(os.path.join(work, "run"), [layer, base]).open()
            else:  # a copy of the pristine root; the dependencies come with the package
                root = Root(os.path.join(work, "run"), [base]).open(copy=True)
            state["layer"] = layer
            root.netns_up()
            return "Debian 12 minbase (%.0f s) under the layer of the package's Depends (%s, %.0f s)" % (
                t1 - t0, how, time.monotonic() - t1)
        step("a clean Debian 12 root with the package's dependencies", clean_root)

        def install():
            shutil.copy(deb, root.file("/tmp/"))
            # The layer's package lists are those its dependencies came from.
            t0 = time.monotonic()
            res = root.apt("%sapt-get install -y -q --no-install-recommends /tmp/%s" % (
                "" if state["layer"] else "apt-get update -q && ", os.path.basename(deb)))
            n = len(re.findall(r"^Unpacking ", res.stdout, re.M))
            # What postinst made: the user, the tokens only root and vigil read.
            pw = root.sh("getent passwd vigil").stdout.strip().split(":")
            if int(pw[2]) >= 1000 or pw[5] != "/var/lib/vigil":
                raise AssertionError("the vigil user: %s" % pw)
            state["uid"], state["gid"] = int(pw[2]), int(pw[3])
            st = os.stat(root.file("/etc/vigil/tokens"))
            if (st.st_uid, st.st_gid, st.st_mode & 0o777) != (0, state["gid"], 0o750):
                raise AssertionError("/etc/vigil/tokens: %d:%d %o" % (st.st_uid, st.st_gid, st.st_mode))
            state["tokens"] = {}
            for role in ROLES:
                f = root.file("/etc/vigil/tokens/%s.token" % role)
                st = os.stat(f)
                if (st.st_uid, st.st_gid, st.st_mode & 0o777) != (0, state["gid"], 0o640):
                    raise AssertionError("%s: %d:%d %o" % (f, st.st_uid, st.st_gid, st.st_mode))
                secret = open(f).read().strip()
                if not re.fullmatch(r"[A-Za-z0-9_-]{32}", secret):
                    raise AssertionError("%s: not 32 base64url characters" % f)
                state["tokens"][role] = secret
            if len(set(state["tokens"].values())) != len(ROLES):
                raise AssertionError("two roles got the same token")
            conf = root.sh("dpkg-query -W -f='${Conffiles}' vigil").stdout
            if "/etc/vigil/vigil.yaml" not in conf:
                raise AssertionError("/etc/vigil/vigil.yaml is not a conffile: %r" % conf)
            # The packaged config as the vigil user reads it (token files included).
            root.sh("chroot --userspec=vigil:vigil / /usr/bin/vigild --check-config "
                    "--config /etc/vigil/vigil.yaml >/dev/null")
            return ("apt-get install %.0f s, %d package(s); user vigil (%d), 4 tokens 0640 "
                    "root:vigil" % (time.monotonic() - t0, n, state["uid"]))
        step("apt installs it: the user, the tokens, the conffile", install)

        def start():
            unit = unit_settings(open(root.file("/lib/systemd/system/vigil.service")).read())
            if (unit.get("User"), unit.get("Group")) != ("vigil", "vigil"):
                raise AssertionError("User/Group: %s" % unit)
            # What systemd does before ExecStart: RuntimeDirectory and
            # StateDirectory owned by the user, with their modes; the UMask.
            for key, top in (("RuntimeDirectory", "/run"), ("StateDirectory", "/var/lib")):
                d = root.file(os.path.join(top, unit[key]))
                os.makedirs(d, exist_ok=True)
                os.chown(d, state["uid"], state["gid"])
                os.chmod(d, int(unit.get(key + "Mode", "0755"), 8))
            cmd = "umask %s; exec %s" % (unit.get("UMask", "0022"), unit["ExecStart"])
            state["log"] = open(os.path.join(work, "vigild.stderr"), "w+")
            state["vigild"] = subprocess.Popen(
                ["ip", "netns", "exec", root.netns, "chroot", "--userspec=vigil:vigil",
                 root.path, "/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "HOME=/var/lib/vigil",
                 "USER=vigil", "LOGNAME=vigil", "sh", "-c", cmd],
                stdout=subprocess.PIPE, stderr=state["log"])
            root.started.add(state["vigild"].pid)
            out = b""
            deadline = time.monotonic() + 30
            while b"is up" not in out:
                line = state["vigild"].stdout.readline()
                if not line or time.monotonic() > deadline:
                    state["log"].seek(0)
                    raise AssertionError("vigild did not come up: %s" % state["log"].read()[-3000:])
                out += line
            state["banner"] = out.decode()
            uids = {}
            for pid in root.pids():
                try:
                    comm = open("/proc/%d/comm" % pid).read().strip()
                    uid = int(re.search(r"^Uid:\s+(\d+)", open("/proc/%d/status" % pid).read(), re.M).group(1))
                except OSError:
                    continue
                if comm.startswith("vigil"):
                    uids[comm] = uid
            if set(uids) != {"vigild", "vigil-ingest", "vigil-relay", "vigil-archive", "vigil-httpd"} \
                    or set(uids.values()) != {state["uid"]}:
                raise AssertionError("processes and their uids: %s" % uids)
            return "as %s" % unit["ExecStart"]
        step("vigild starts as vigil.service starts it (as vigil, the packaged config)", start)

        def http(path, role=None):
            args = ["ip", "netns", "exec", root.netns, "curl", "-sS", "--max-time", "10", "-o", "-",
                    "-w", "\n%{http_code}"]
            if role:
                args += ["-H", "Authorization: Bearer " + state["tokens"][role]]
            res = run(args + ["http://127.0.0.1:8080" + path], check=False)
            body, _, code = res.stdout.rpartition("\n")
            return int(code or 0), body

        def stream():
            state["sentinel"] = subprocess.Popen(
                ["ip", "netns", "exec", root.netns, "chroot", root.path] + CHROOT_ENV[:3] +
                ["vigil-sentinel", "--url", "ws://127.0.0.1:8082/sentinel", "--token",
                 state["tokens"]["sentinel"], "--name", "deb-cam", "--state", "/tmp/deb-cam.id",
                 "--size", "320x180", "--bitrate", "200"],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "sentinel.stderr"), "w"))
            root.started.add(state["sentinel"].pid)
            until(lambda: http("/health") == (200, "ok"), 30, "/health 200")

            def listed():
                code, body = http("/api/sessions", "proctor")
                if code != 200:
                    return None
                doc = json.loads(body)
                rows = doc.get("sessions", doc) if isinstance(doc, dict) else doc
                return [s for s in rows if s.get("sentinelName", s.get("name")) == "deb-cam"] or None
            try:
                sessions = until(listed, 30, "deb-cam's session in /api/sessions")
            except AssertionError as e:
                tail = open(os.path.join(work, "sentinel.stderr")).read()[-2000:]
                raise AssertionError("%s; /api/sessions: %s; the sentinel's log:\n%s" % (
                    e, http("/api/sessions", "proctor"), tail)) from None
            state["session"] = sessions[0]["sessionId"]
            # The operators' command, as root on the server.
            st = json.loads(root.sh("vigilctl --config /etc/vigil/vigil.yaml status --json").stdout)
            states = {x["name"]: x["state"] for x in st["stages"]}
            if set(states.values()) != {"running"}:
                raise AssertionError("vigilctl status: %s" % states)
            return "/health ok; session %s listed; vigilctl status: 4 running" % state["session"]
        step("a packaged vigil-sentinel streams into it: /health 200, its session listed, "
             "vigilctl status", stream)

        def stop():
            state["sentinel"].send_signal(signal.SIGTERM)
            state["sentinel"].wait(30)
            # systemd's stop: SIGTERM to the main process (KillMode=mixed).
            state["vigild"].send_signal(signal.SIGTERM)
            code = state["vigild"].wait(60)
            if code != 0:
                raise AssertionError("vigild exited %d" % code)
            sessions = glob.glob(root.file("/var/lib/vigil/**/%s" % state["session"]), recursive=True)
            if not sessions:
                raise AssertionError("session %s not under /var/lib/vigil" % state["session"])
            return "exit 0; the session on disk"
        step("vigild stops on SIGTERM", stop)

        def purge():
            root.apt("apt-get purge -y -q vigil")
            gone = ["/usr/bin/vigild", "/usr/bin/vigilctl", "/lib/systemd/system/vigil.service",
                    "/etc/vigil", "/usr/share/vigil", "/usr/share/doc/vigil", "/run/vigil"]
            left = [p for p in gone if os.path.lexists(root.file(p))]
            if left:
                raise AssertionError("left after purge: %s" % left)
            if not glob.glob(root.file("/var/lib/vigil/**/%s" % state["session"]), recursive=True):
                raise AssertionError("the recordings were removed by a plain purge")
            if root.sh("getent passwd vigil", check=False).returncode != 0:
                raise AssertionError("the vigil user was removed")
            # Asked for: the recordings go too.
            root.sh("dpkg -i /tmp/%s >/dev/null" % os.path.basename(deb))
            root.sh("apt-get purge -y -q vigil", env=["VIGIL_PURGE_RECORDINGS=yes"])
            if os.path.lexists(root.file("/var/lib/vigil")):
                raise AssertionError("/var/lib/vigil left by a purge with VIGIL_PURGE_RECORDINGS=yes")
            return "recordings and the vigil user kept; with VIGIL_PURGE_RECORDINGS=yes, /var/lib/vigil gone"
        step("purge removes what it installed, keeps the recordings unless asked", purge)
    except Exception:  # noqa: BLE001 - reported by step(); the summary follows
        pass
    finally:
        for p in ("sentinel", "vigild"):
            if p in state and state[p].poll() is None:
                state[p].kill()
                state[p].wait()
        if root:
            root.close()
        for lock in ("layer_lock", "base_lock"):
            if state.get(lock):
                state[lock].close()
        keep_logs(work, state)
        if os.environ.get("VIGIL_DEB_KEEP") and os.path.exists(deb):
            shutil.copy(deb, os.environ["VIGIL_DEB_KEEP"])  # for VIGIL_DEB= next time
        try:
            safe_rm(work)
        except AssertionError as e:
            log("FAIL cleaning up: %s" % e)
            failed += 1
    log("seconds: " + ", ".join("%s %.1f" % (n.split(":")[0][:40], t) for n, t in timings))
    log("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def keep_logs(work, state):
    """vigild's log and the generated tokens, for tests/check_secrets.py."""
    run_name = "test_deb-%d" % os.getpid()
    dst = os.path.join(LOGS, "logs", run_name)
    try:
        os.makedirs(dst, exist_ok=True)
        for name in ("vigild.stderr", "sentinel.stderr"):
            if os.path.exists(os.path.join(work, name)):
                shutil.copyfile(os.path.join(work, name), os.path.join(dst, name))
        if "banner" in state:
            with open(os.path.join(dst, "vigild.stdout.log"), "w") as f:
                f.write(state["banner"])
        if state.get("tokens"):
            os.makedirs(os.path.join(LOGS, "tokens"), exist_ok=True)
            path = os.path.join(LOGS, "tokens", run_name + ".json")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump([{"name": r + "s", "token": t} for r, t in sorted(state["tokens"].items())], f)
    except OSError as e:
        log("logs not kept: %s" % e)


if __name__ == "__main__":
    sys.exit(main())
