"""``rce-jax stats``: show and merge saved RankStats files and evaluation results alike."""

from __future__ import annotations

import json
import os

from ..io import check_output_file, write_json
from ..results import ResultFileError, read_result
from ..stats import RankStats


def register(sub, name):
    p = sub.add_parser(name, help="show or merge RankStats files and eval result files")
    verbs = p.add_subparsers(dest="verb", required=True)
    show = verbs.add_parser("show", help="print the decomposition of RankStats files")
    show.add_argument("files", nargs="+", help="RankStats .npz files or `rce-jax eval` result .json files (merged if several)")
    show.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    merge = verbs.add_parser("merge", help="merge RankStats files (hosts, shards, runs) into one")
    merge.add_argument("files", nargs="+", help="RankStats .npz or eval result .json files to merge")
    merge.add_argument("-o", "--out", required=True, help="output .npz file")
    merge.add_argument("--decomposition", help="also write the decomposition as JSON here")
    p.set_defaults(run=run)


def load_merged(files) -> RankStats:
    """The merge of the files; a file named twice would count its tokens twice, so it is refused."""
    resolved = [os.path.realpath(f) for f in files]
    twice = sorted({f for f in files if resolved.count(os.path.realpath(f)) > 1})
    if twice:
        raise ValueError(f"the same statistics file is given more than once: {', '.join(twice)}")
    total = load_stats(files[0])
    for f in files[1:]:
        total = total.merge(load_stats(f))
    return total


def load_stats(path) -> RankStats:
    """The RankStats of a RankStats file or of an eval result file (its rank statistics)."""
    if str(path).endswith(".json"):
        try:
            return read_result(path).rank_stats_object()
        except ResultFileError as e:
            raise ValueError(f"{e} (give a RankStats .npz file or an `rce-jax eval` result)") from e
    return RankStats.load(path)


def run(args) -> int:
    if args.verb == "merge":
        check_output_file(args.out, "-o")
        if args.decomposition:
            check_output_file(args.decomposition, "--decomposition")
    stats = load_merged(args.files)
    # Merging needs no decomposition (files without tokens merge fine); show and
    # --decomposition do, and an empty merge is refused before anything is written.
    dec = stats.decompose() if args.verb == "show" or args.decomposition else None
    if args.verb == "show":
        if args.json:
            print(json.dumps({"meta": stats.meta, "n_tied": stats.n_tied, **dec.to_dict()}))
        else:
            print(dec)
            print(f"settings: {json.dumps(stats.meta, sort_keys=True)}")
            print(f"tokens whose target ties another entry: {stats.n_tied}")
        return 0
    stats.save(args.out)
    if args.decomposition:
        write_json(args.decomposition, {"meta": stats.meta, **dec.to_dict()})
    print(f"merged {len(args.files)} files, {stats.n_tokens} tokens -> {args.out}")
    return 0
