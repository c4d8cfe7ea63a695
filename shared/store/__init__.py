"""The job store (Firestore): one record per job, its result, its sweep."""
