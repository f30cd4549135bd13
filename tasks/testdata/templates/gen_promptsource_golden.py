#!/usr/bin/env python3
"""Reference renders for roe/train's Go promptsource renderer, made with Python Jinja2.

Re-implements promptsource's Template.apply (templates.py at the commit named in
shared/data/SOURCES.md): the Jinja2 default Environment plus promptsource's globals/filters,
`}}` -> ` | string | truncate(2048) }}`, "|||" protection in string fields, answer_choices
rendered first, split on "|||" and strip. For every task folder with templates, every split, the
first N examples and every template, it writes one JSON line per (task, split, template) with a digest of each example's result
(and the full texts of the first example that renders in the first split, to keep the file small). The Go test TestRenderMatchesJinja2
compares against it.

Usage (from the repository root):
  python3 tasks/testdata/templates/gen_promptsource_golden.py ../shared/data > tasks/testdata/templates/promptsource_golden.jsonl
"""
import hashlib, json, os, sys
import yaml
from jinja2 import BaseLoader, Environment

N = 20
TEXT_VAR_LENGTH = 2048
PIPE = "3ed2dface8203c4c9dfb1a5dc58e41e0"

# Keep in sync with taskTemplates in tasks/task.go.
TASKS = {
    "sst2": (["glue_sst2.yaml"], {}),
    "mr": (["rotten_tomatoes.yaml"], {}),
    "ag_news": (["ag_news.yaml"], {}),
    "cb": (["super_glue_cb.yaml"], {}),
    "rte": (["super_glue_rte.yaml", "glue_rte.yaml"], {"sentence1": "premise", "sentence2": "hypothesis"}),
    "wsc": (["super_glue_wsc.fixed.yaml"], {}),
    "copa": (["super_glue_copa.yaml"], {}),
    "wic": (["super_glue_wic.yaml"], {}),
    "boolq": (["super_glue_boolq.yaml"], {}),
    "mrpc": (["glue_mrpc.yaml"], {}),
    "stsb": (["glue_stsb.yaml"], {}),
    "wnli": (["glue_wnli.yaml"], {}),
    "cola": (["glue_cola.yaml"], {}),
    "anli_r1": (["anli.yaml"], {}),
    "anli_r2": (["anli.yaml"], {}),
    "anli_r3": (["anli.yaml"], {}),
    "dream": (["dream.yaml"], {}),
}

env = Environment(loader=BaseLoader)
env.globals.update(zip=zip)
env.filters["choice"] = lambda c: c[0]  # promptsource: random.choice; unused by these tasks
env.filters["highlight"] = lambda s: "<span style='color: #F08080'>" + s + "</span>"


class Loader(yaml.SafeLoader):
    pass


Loader.add_multi_constructor("!", lambda l, s, n: l.construct_mapping(n, deep=True))


def escape(ex):
    return {k: v.replace("|||", PIPE) if isinstance(v, str) else v for k, v in ex.items()}


def apply(t, ex):
    choices = None
    if t.get("answer_choices") is not None:
        s = env.from_string(t["answer_choices"]).render(**escape(ex))
        choices = [c.strip().replace(PIPE, "|||") for c in s.split("|||")]
    jinja = t["jinja"].replace("}}", " | string | truncate(%d) }}" % TEXT_VAR_LENGTH)
    pex = escape(ex)
    pex["answer_choices"] = choices
    out = env.from_string(jinja).render(**pex)
    return [p.replace(PIPE, "|||").strip() for p in out.split("|||")], choices


def digest(inp, target, choices):
    """First 16 hex digits of SHA-256 over input NUL target NUL choices joined by NUL (none: no third part)."""
    blob = inp + "\x00" + target
    if choices is not None:
        blob += "\x00" + "\x00".join(choices)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def main():
    data = sys.argv[1]
    for task in sorted(TASKS):
        files, fmap = TASKS[task]
        tdir = os.path.join(data, "tasks", task)
        if not os.path.isdir(tdir):
            continue
        templates = []
        for f in files:
            doc = yaml.load(open(os.path.join(data, "templates", f)), Loader=Loader)
            templates += [(f, t) for t in doc["templates"].values()]
        splits = sorted(x[:-6] for x in os.listdir(tdir) if x.endswith(".jsonl"))
        first_split = splits[0]
        for split in splits:
            with open(os.path.join(tdir, split + ".jsonl")) as fh:
                exs = [json.loads(l) for _, l in zip(range(N), fh)]
            for ex in exs:
                for to, frm in fmap.items():
                    if to not in ex and frm in ex:
                        ex[to] = ex[frm]
            for f, t in templates:
                rec = {"task": task, "split": split, "file": f, "template": t["name"], "renders": []}
                for i, ex in enumerate(exs):
                    try:
                        parts, choices = apply(t, ex)
                    except Exception as e:  # noqa: BLE001
                        rec["renders"].append("error: " + repr(e))
                        continue
                    if len(parts) == 1 or (len(parts) == 2 and parts[1] == ""):
                        rec["renders"].append("no_target")
                    elif len(parts) > 2:
                        rec["renders"].append("error: %d parts" % len(parts))
                    else:
                        rec["renders"].append("ok:" + digest(parts[0], parts[1], choices))
                        if "example" not in rec and split == first_split:
                            rec["example"] = {"index": i, "input": parts[0], "target": parts[1], "choices": choices}
                print(json.dumps(rec, ensure_ascii=False))


if __name__ == "__main__":
    main()
