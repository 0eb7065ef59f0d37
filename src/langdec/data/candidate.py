"""A source file the corpus filters consider (`Candidate`): its own module, so the filter chains of both corpora
(corpus, study_corpus) can name it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Candidate:
    file_path: str
    code: str
    license: str | None
    sha256: str
    stars: int | None = None
    row: int = -1  # the record's position in the source (the study's idx)
    extra: dict = field(default_factory=dict)  # the record's other columns the filters read

    @property
    def idx(self) -> int:
        # Stable across runs and filters: derived from the file's content alone.
        return int(self.sha256[:15], 16)
