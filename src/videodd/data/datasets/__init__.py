"""Every dataset ``videodd prepare NAME`` knows, one module per dataset.

Each module holds everything about its dataset(s): the ``index_*`` function that parses the official
layout into a :class:`~videodd.data.layouts.SplitIndex` (no decoding), the prepare source registered
with :func:`~videodd.data.datasets.base.register_dataset` (name, one-line description, default clip
spec) and the constants only it needs::

    base.py           SOURCES, register_dataset, default_spec, resolve_spec, decode plumbing (_run, _need, ...)
    ucf101.py         ucf101, miniucf (MINIUCF_CLASSES)
    hmdb51.py         hmdb51, hmdb51-vdsd
    kinetics400.py    kinetics400
    ssv2.py           ssv2
    folder.py         folder
    file_list.py      list
    synth_actions.py  synth-actions (registration only; the generator is videodd.data.synthetic)

What several layouts share (LayoutError, VideoItem, SplitIndex, the path resolver, list-file helpers)
lives in ``videodd.data.layouts``; the public entry points (``call_source``, ``dataset_help``) in
``videodd.data.sources``, which imports this package so that the registry is full.

To add a dataset: write ``<name>.py`` here with an ``index_<name>(root, ...) -> SplitIndex`` built from
the ``videodd.data.layouts`` helpers (raise ``LayoutError`` naming the file and the problem) and a
source::

    @register_dataset("name", "one line for `videodd datasets` (--root, ...)", default_spec="8x64")
    def name_source(out_dir, *, root=None, **decode):
        index = index_name(_need(root, "--root", "name"))
        return _run("name", index, out_dir, **_decode_fields(decode))

Keyword-only parameters become the dataset's options (``--root`` ...); ``**decode`` takes the decoding
options (``base.DECODE_OPTIONS``). A dataset module imports only
``datasets.base``, ``videodd.data.layouts`` and other ``videodd.data`` modules, never this package.
Every module here is imported when the package is, so the new file needs no other edit.
"""

from videodd.registry import import_submodules

import_submodules(__name__)
