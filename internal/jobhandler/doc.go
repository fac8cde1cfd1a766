// Package jobhandler holds the handlers of scriptgen's job kinds, the work a
// runner does once it holds a job's lease: Generation writes an episode's
// script (with passages of the project's documents as context), RAGDocument
// normalises and chunks a document. Each returns its job's completion, whose
// effects (the episode, the chunks) commit with the job's success; each
// satisfies runner.Handler, the interface the executor consumes.
package jobhandler
