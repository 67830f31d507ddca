"""Write a notebook from a list of cells (code strings); '# parameters' marks the tagged cell.

Usage: python scripts/make_notebook.py SPEC.py OUT.ipynb, where SPEC.py defines CELLS (list of str)
and optionally MARKDOWN (list of (index, text)). Keeps notebooks stripped and uniform.
"""
import runpy
import sys

import nbformat


def build(cells: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for src in cells:
        if src.startswith("#md\n"):
            nb.cells.append(nbformat.v4.new_markdown_cell(src[4:]))
            continue
        cell = nbformat.v4.new_code_cell(src.strip("\n"))
        if src.lstrip().startswith("# parameters"):
            cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    for c in nb.cells:
        c.pop("id", None)
    nb.nbformat_minor = 4
    return nb


if __name__ == "__main__":
    spec = runpy.run_path(sys.argv[1])
    nbformat.write(build(spec["CELLS"]), sys.argv[2])
