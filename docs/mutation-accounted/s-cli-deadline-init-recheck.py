"""Re-check a `_cli._Deadline.__init__` mutant (mutmut apply puts it in the first `__init__` of _cli.py, `_GuardedForward`s):
    python docs/mutation-accounted/s-cli-deadline-init-recheck.py NAME OUTDIR   then   PYTHONPATH=OUTDIR pytest ... (see s-cli.md)."""
import shutil, subprocess, sys, os
name = sys.argv[1]; out = sys.argv[2]
W = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python")
scr = out + "_mc"
shutil.rmtree(scr, ignore_errors=True); shutil.copytree(os.environ.get("MUTATION_DIR", "build/mutation"), scr)
shutil.rmtree(scr + "/src", ignore_errors=True); shutil.copytree(W, scr + "/src")
subprocess.run([sys.executable, "-m", "mutmut", "apply", name], cwd=scr, check=True, capture_output=True)
f = "/fluxparity/testing/_cli.py"
applied = open(scr + "/src" + f).read().split("\n"); orig = open(W + f).read().split("\n")
def block(lines, cls, meth):
    c = next(i for i, l in enumerate(lines) if l.startswith(f"class {cls}"))
    s = next(i for i in range(c, len(lines)) if lines[i].startswith(f"    def {meth}("))
    e = next(i for i in range(s + 1, len(lines)) if lines[i].startswith("    def ") or (lines[i] and not lines[i].startswith(" ")))
    while not lines[e - 1].strip():
        e -= 1
    return s, e
s, e = block(applied, "_GuardedForward", "__init__"); mut = applied[s:e]
assert any("alarm" in l or "grace" in l for l in mut), mut
s2, e2 = block(orig, "_Deadline", "__init__")
new = orig[:s2] + mut + orig[e2:]
shutil.rmtree(out, ignore_errors=True); shutil.copytree(W, out)
open(out + f, "w").write("\n".join(new))
shutil.rmtree(scr)
print("\n".join(mut))
