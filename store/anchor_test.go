package store

import (
	"strings"
	"testing"
)

// A chain cut back at its end, head rewritten to match, verifies on its
// own; the head taken before the cut shows it.
func TestAnchorsDetectTruncation(t *testing.T) {
	st := openTemp(t)
	org := NewID(t0)
	for i := range 5 {
		mustUpdate(t, st, func(tx *Tx) error {
			tx.Audit(AuditRecord{OrgID: org, Action: "step", Reason: strings.Repeat("x", i), ActorKind: ActorSystem, At: t0})
			return nil
		})
	}
	heads, err := st.AuditHeads()
	if err != nil || len(heads) != 1 || heads[0].OrgID != org || heads[0].Seq != 5 || len(heads[0].Hash) != 64 {
		t.Fatalf("heads %+v %v", heads, err)
	}
	if br, err := st.CheckAnchors(heads); err != nil || len(br) != 0 {
		t.Fatalf("fresh anchors: %v %v", br, err)
	}

	// Cut records 4 and 5 and point the head at record 3.
	o, _ := ParseID(org)
	var mid *AuditRecord
	st.AuditLog(org, 3, func(r *AuditRecord) bool { mid = r; return false })
	sum, _, _ := recordHash(*mid)
	rawDelete(t, st, key(pAudit, o[:], u64(4)))
	rawDelete(t, st, key(pAudit, o[:], u64(5)))
	rawPut(t, st, key(pAuditHead, o[:]), chainHead{seq: 3, hash: sum}.encode())

	if rep, err := st.VerifyAudit(); err != nil || len(rep.Breaks) != 0 {
		t.Fatalf("the cut chain is consistent on its own: %+v %v", rep, err)
	}
	br, err := st.CheckAnchors(heads)
	if err != nil || len(br) != 1 || br[0].Seq != 5 || !strings.Contains(br[0].Reason, "gone") {
		t.Fatalf("anchor check: %+v %v", br, err)
	}
	// An anchor naming a record that is there with another hash.
	other := heads[0]
	other.Seq = 2
	br, _ = st.CheckAnchors([]AuditHead{other})
	if len(br) != 1 || !strings.Contains(br[0].Reason, "differs") {
		t.Fatalf("%+v", br)
	}
}
