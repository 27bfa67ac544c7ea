# Sourced by bench/run.sh and bench/container.sh: the scf-lean source a benchmark builds.
#
#   snapshot REV DIR   sets SNAP_SRC and SNAP_COMMIT: for REV=worktree the working tree as it
#                      is (edits included), else a clean `git archive` of REV in DIR (others may
#                      be editing the working tree), and its short commit.
snapshot() {
  local rev=$1 dir=$2
  if [[ "$rev" == worktree ]]; then
    SNAP_SRC=$(git rev-parse --show-toplevel)
    SNAP_COMMIT="$(git rev-parse --short=12 HEAD)+worktree"
  else
    rm -rf "$dir"
    mkdir -p "$dir"
    git archive "$rev" | tar -x -C "$dir"
    SNAP_SRC=$dir
    SNAP_COMMIT=$(git rev-parse --short=12 "$rev")
  fi
}
