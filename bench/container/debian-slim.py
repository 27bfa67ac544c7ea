#!/usr/bin/python3
"""A Debian slim root filesystem made from this machine's own installed packages, offline.

    bench/container/debian-slim.py OUT_DIR

Writes, for bench/container.sh's typical images:
  OUT_DIR/base.tar      the root: every installed package of Priority required or Essential,
                        with everything they depend on (Depends and Pre-Depends, closed over),
                        the files each one installed (dpkg -L) as they are on this machine; then
                        slimmed as debian:*-slim is (no /usr/share/doc except copyright files,
                        no man, info, locale or lintian files), /etc/passwd and /etc/group from
                        base-passwd, the alternatives' links, ld.so.cache, and the dpkg database
                        of those packages
  OUT_DIR/python.tar    a layer on top of it: python3 with everything it depends on that the
                        root lacks (the files of each package, and the compiled .pyc that its
                        installation made), the dpkg database and ld.so.cache updated
  OUT_DIR/manifest.json what each holds: packages with versions, files, bytes

The machine must be Debian with python3 installed from Debian's package (as /usr/bin/python3).
Merged /usr: /bin, /sbin, /lib and /lib64 are links into /usr, as on Debian 12 and later, and
every path is written under its merged name.
"""
import json
import os
import shutil
import stat
import subprocess
import sys

SLIM_EXCLUDE = ("usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/",
                "usr/share/lintian/", "usr/share/linda/", "usr/share/groff/")
MERGED = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def installed():
    """name → {version, priority, essential, deps, provides, arch}, installed packages only."""
    fmt = ("${Package}\\t${Architecture}\\t${Version}\\t${db:Status-Abbrev}\\t${Priority}\\t"
           "${Essential}\\t${Pre-Depends}\\t${Depends}\\t${Provides}\\n")
    pkgs, provided = {}, {}
    for line in run("dpkg-query", "-W", "-f", fmt).splitlines():
        name, arch, ver, st, prio, ess, pre, dep, prov = line.split("\t")
        if not st.startswith("ii"):
            continue
        pkgs[name] = {"arch": arch, "version": ver, "priority": prio, "essential": ess == "yes",
                      "deps": [d for d in (pre + "," + dep).split(",") if d.strip()]}
        for p in prov.split(","):
            p = p.strip().split(" ")[0]
            if p:
                provided.setdefault(p, name)
    return pkgs, provided


def closure(roots, pkgs, provided):
    """roots and everything they depend on (the first installed alternative of each)."""
    seen, todo = set(), list(roots)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        for dep in pkgs[n]["deps"]:
            for alt in dep.split("|"):
                a = alt.strip().split(" ")[0].split(":")[0]
                a = a if a in pkgs else provided.get(a)
                if a:
                    todo.append(a)
                    break
    return seen


def merged(path):
    """The path of a file under merged /usr, relative to the root ('' for / itself)."""
    rel = path.lstrip("/")
    head, _, rest = rel.partition("/")
    if head in MERGED:
        rel = MERGED[head] + ("/" + rest if rest else "")
    return rel


def files_of(pkg, arch):
    out = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True)
    if out.returncode != 0:
        out = subprocess.run(["dpkg", "-L", f"{pkg}:{arch}"], capture_output=True, text=True,
                             check=True)
    rels = []
    for p in out.stdout.splitlines():
        p = p.strip()
        if not p.startswith("/") or p == "/." or p.lstrip("/") in MERGED:
            continue
        rel = merged(p)
        if rel.startswith(SLIM_EXCLUDE) and not (
                rel.startswith("usr/share/doc/") and rel.endswith("/copyright")):
            continue
        if os.path.lexists("/" + rel):
            rels.append(rel)
            # What the package's installation compiled next to a module: its __pycache__.
            if rel.endswith(".py"):
                d, f = os.path.split(rel)
                cache = os.path.join(d, "__pycache__")
                if os.path.isdir("/" + cache):
                    for c in os.listdir("/" + cache):
                        if c.startswith(f[:-3] + ".") and c.endswith(".pyc"):
                            rels.append(os.path.join(cache, c))
    return rels


def copy_in(root, rel, added):
    """Copies /rel to root/rel (its parents first, as on this machine); a link stays a link."""
    if not rel or os.path.lexists(os.path.join(root, rel)):
        return
    parent = os.path.dirname(rel)
    copy_in(root, parent, added)
    src, dst = "/" + rel, os.path.join(root, rel)
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISDIR(st.st_mode):
        os.mkdir(dst)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    elif stat.S_ISREG(st.st_mode):
        shutil.copy2(src, dst)
    else:
        return
    os.lchown(dst, st.st_uid, st.st_gid)
    added.append(rel)


def write(root, rel, text, added, mode=0o644):
    dst = os.path.join(root, rel)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "w") as f:
        f.write(text)
    os.chmod(dst, mode)
    added.append(rel)


def dpkg_db(root, names, pkgs, added):
    """/var/lib/dpkg/status holding names' entries, and their info files."""
    paras = open("/var/lib/dpkg/status").read().split("\n\n")
    keep = [p for p in paras if p.startswith("Package: ")
            and p.split("\n", 1)[0][9:] in names]
    write(root, "var/lib/dpkg/status", "\n\n".join(keep).strip("\n") + "\n", added)
    info = "/var/lib/dpkg/info"
    for f in sorted(os.listdir(info)):
        base = f.split(".", 1)[0].split(":")[0]
        if base in names and not os.path.lexists(os.path.join(root, "var/lib/dpkg/info", f)):
            copy_in(root, os.path.join("var/lib/dpkg/info", f), added)


def alternatives(root, added):
    """The /etc/alternatives link of every alternative whose choice is in root, and its link."""
    for line in run("update-alternatives", "--get-selections").splitlines():
        name = line.split()[0]
        q = run("update-alternatives", "--query", name)
        fields = dict(l.split(": ", 1) for l in q.splitlines() if ": " in l and not l.startswith(" "))
        link, value = fields.get("Link"), fields.get("Value")
        if not link or not value or not os.path.lexists(os.path.join(root, merged(value))):
            continue
        alt = os.path.join("etc/alternatives", name)
        if not os.path.lexists(os.path.join(root, alt)):
            os.makedirs(os.path.join(root, "etc/alternatives"), exist_ok=True)
            os.symlink(value, os.path.join(root, alt))
            added.append(alt)
        lrel = merged(link)
        if not os.path.lexists(os.path.join(root, lrel)):
            copy_in(root, os.path.dirname(lrel), added)
            os.symlink("/etc/alternatives/" + name, os.path.join(root, lrel))
            added.append(lrel)


def ldconfig(root, added):
    subprocess.run(["ldconfig", "-r", root], check=True)
    if "etc/ld.so.cache" not in added:
        added.append("etc/ld.so.cache")


def tar(root, rels, out):
    """A tarball of root holding rels (numeric owners, parents before children)."""
    lst = out + ".list"
    with open(lst, "w") as f:
        f.write("\n".join(sorted(set(rels))) + "\n")
    subprocess.run(["tar", "--numeric-owner", "--no-recursion", "-C", root, "-cf", out,
                    "-T", lst], check=True)
    os.unlink(lst)


def layer_bytes(root, rels):
    return sum(os.lstat(os.path.join(root, r)).st_size for r in set(rels)
               if stat.S_ISREG(os.lstat(os.path.join(root, r)).st_mode))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    pkgs, provided = installed()
    if "python3" not in pkgs or not os.path.exists("/etc/debian_version"):
        sys.exit("debian-slim.py: needs Debian with the python3 package installed")
    root = os.path.join(out, "root")
    shutil.rmtree(root, ignore_errors=True)
    os.mkdir(root)
    os.chmod(root, 0o755)

    # The base: minbase's rule (required and Essential, closed over their dependencies).
    base = closure([n for n, p in pkgs.items() if p["priority"] == "required" or p["essential"]],
                   pkgs, provided)
    added = []
    for top, target in MERGED.items():
        copy_in(root, target, added)
        os.symlink(target, os.path.join(root, top))
        added.append(top)
    for d, mode in (("tmp", 0o1777), ("root", 0o700), ("home", 0o755), ("proc", 0o555),
                    ("sys", 0o555), ("dev", 0o755), ("run", 0o755), ("var/tmp", 0o1777)):
        os.makedirs(os.path.join(root, d), exist_ok=True)
        os.chmod(os.path.join(root, d), mode)
        added.append(d)
    for n in sorted(base):
        for rel in files_of(n, pkgs[n]["arch"]):
            copy_in(root, rel, added)
    master = "/usr/share/base-passwd/"
    write(root, "etc/passwd", open(master + "passwd.master").read(), added)
    write(root, "etc/group", open(master + "group.master").read(), added)
    alternatives(root, added)
    dpkg_db(root, base, pkgs, added)
    ldconfig(root, added)
    base_rels = list(added)
    tar(root, base_rels, os.path.join(out, "base.tar"))

    # python3 on top: what it needs that the base lacks.
    py = closure(["python3"], pkgs, provided) - base
    added = []
    for n in sorted(py):
        for rel in files_of(n, pkgs[n]["arch"]):
            copy_in(root, rel, added)
    alternatives(root, added)
    os.unlink(os.path.join(root, "var/lib/dpkg/status"))
    dpkg_db(root, base | py, pkgs, added)
    ldconfig(root, added)
    tar(root, added, os.path.join(out, "python.tar"))

    describe = lambda names: {n: pkgs[n]["version"] for n in sorted(names)}
    json.dump({
        "debian": open("/etc/debian_version").read().strip(),
        "base": {"packages": describe(base), "entries": len(set(base_rels)),
                 "file_bytes": layer_bytes(root, base_rels)},
        "python": {"packages": describe(py), "entries": len(set(added)),
                   "file_bytes": layer_bytes(root, added)},
    }, open(os.path.join(out, "manifest.json"), "w"), indent=1)
    shutil.rmtree(root)
    print(out)


if __name__ == "__main__":
    main()
