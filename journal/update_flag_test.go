package journal_test

import "flag"

// update is accepted so that "go test ./... -update" (which rewrites the
// golden files of the packages that have them) runs here too. It rewrites
// nothing here: testdata/old.want pins how an old journal behaves
// (TestOldJournalUnchanged), and is not to be regenerated.
var _ = flag.Bool("update", false, "rewrite golden files (none in this package)")
