"""Corpora from TensorFlow Datasets (the optional ``tfds`` extra).

``tensorflow_datasets`` is imported only here, only when a ``tfds:`` spec is
loaded. Nothing is downloaded or prepared implicitly (``c4`` or ``wikipedia``
would mean terabytes or a Beam pipeline): the dataset must already be prepared
in TFDS's data directory (``tfds_data_dir=``, else ``TFDS_DATA_DIR``, else
``~/tensorflow_datasets``), e.g. with ``tfds build c4/en``. Examples are read in the dataset's own order
(``shuffle_files=False``), so a corpus is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator

INSTALL_HINT = "pip install 'rce-jax[tfds]'"


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            f"loading a 'tfds:' corpus needs tensorflow-datasets and tensorflow; "
            f"install them with: {INSTALL_HINT}"
        ) from e
    try:  # Keep TensorFlow off the accelerators: JAX owns them.
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
    except (ImportError, RuntimeError):
        pass  # RuntimeError: TF's devices are already initialised; leave them be.
    return tfds


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def iter_tfds(
    name: str, split: str, text_field: str, max_docs: int | None, data_dir: str | None = None
) -> Iterator[tuple[str, str]]:
    """(document name, text) pairs of TFDS dataset ``name``, split ``split``.

    ``data_dir`` (e.g. ``gs://bucket/tensorflow_datasets``) overrides TFDS's default.

    The document name is ``"<name>@<split>#<example index>"``.
    """
    tfds = _import_tfds()
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except (ValueError, AssertionError) as e:  # DatasetNotFoundError is a ValueError
        raise ValueError(f"unknown TFDS dataset {name!r}: {_first_line(e)}") from e
    features = builder.info.features
    if text_field not in features:
        raise ValueError(
            f"TFDS dataset {name!r} has no feature {text_field!r}; "
            f"its features are {sorted(features.keys())} (choose one with --text-field)"
        )
    try:
        ds = builder.as_dataset(split=split, shuffle_files=False)
    except AssertionError as e:
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared in {builder.data_dir!r}: prepare it first "
            f"(e.g. `tfds build {name}`) or point TFDS_DATA_DIR at a prepared copy "
            f"({_first_line(e)})"
        ) from e
    if max_docs is not None:
        ds = ds.take(max_docs)
    for index, example in enumerate(tfds.as_numpy(ds)):
        value = example[text_field]
        where = f"{name}@{split}#{index}"
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{where}: field {text_field!r} is not valid UTF-8 at byte {e.start}") from e
        if not isinstance(value, str):
            raise ValueError(
                f"{where}: field {text_field!r} is {type(value).__name__}, not text"
            )
        yield where, value
