// Package rag owns retrieval-augmented generation on the scriptgen side: it
// normalises and chunks a project's documents (for jobhandler.RAGDocument,
// which runs the rag_document jobs), turns free text into safe search terms,
// runs the users' searches within limits (Searcher: terms, time, searches at
// once), and retrieves the chunks a generation job passes to its generator as
// context. It writes nothing itself: a document's chunks are the effect of
// its job and commit with the job's success (invariant 3), which is also why
// re-processing replaces them.
package rag
