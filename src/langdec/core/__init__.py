"""The ground every stage stands on: typed configuration and its validation, paths, errors and exit codes,
atomic outputs, locks, URLs without secrets, language tables."""
