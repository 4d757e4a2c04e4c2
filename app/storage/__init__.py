"""Files on disk: model directories, weights from elsewhere, reports."""
