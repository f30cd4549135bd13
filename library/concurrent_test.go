package library

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
)

// TestConcurrentRemove: goroutines removing one expert, others removing
// distinct experts and others adding, all at once. Badger answers the
// losers of a read-write race with ErrConflict; Remove must retry it (the
// server answered a concurrent DELETE with 500 "Transaction Conflict").
func TestConcurrentRemove(t *testing.T) {
	l := openMem(t)
	const rounds, same, distinct, adders = 8, 8, 6, 4
	want := map[string]bool{}
	for r := range rounds {
		names := []string{fmt.Sprintf("same/%d", r)}
		for i := range distinct {
			names = append(names, fmt.Sprintf("del/%d/%d", r, i))
		}
		for _, n := range names {
			if _, err := l.Add(synth(n, small)); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		sameErrs := make([]error, same)
		otherErrs := make([]error, distinct)
		addErrs := make([]error, adders)
		for i := range same {
			wg.Go(func() { <-start; sameErrs[i] = l.Remove(names[0]) })
		}
		for i := range distinct {
			wg.Go(func() { <-start; otherErrs[i] = l.Remove(names[1+i]) })
		}
		for i := range adders {
			n := fmt.Sprintf("add/%d/%d", r, i)
			want[n] = true
			wg.Go(func() { <-start; _, addErrs[i] = l.Add(synth(n, small)) })
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range sameErrs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrNotFound):
				t.Fatalf("round %d: Remove of a shared name: %v", r, err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d concurrent Removes of one expert succeeded, want 1", r, ok)
		}
		for _, err := range otherErrs {
			if err != nil {
				t.Fatalf("round %d: Remove: %v", r, err)
			}
		}
		for _, err := range addErrs {
			if err != nil {
				t.Fatalf("round %d: Add: %v", r, err)
			}
		}
	}
	checkConsistent(t, l, want)
}

// checkConsistent fails unless the library holds exactly the experts in
// want, each whole (List, Get and Instances agree), with no data that no
// manifest points to.
func checkConsistent(t *testing.T, l *Library, want map[string]bool) {
	t.Helper()
	ms, err := l.List()
	if err != nil {
		t.Fatal(err)
	}
	var got, exp []string
	live := map[string]bool{}
	for _, m := range ms {
		got = append(got, m.Name)
		live[m.ID] = true
		e, err := l.Get(m.Name)
		if err != nil {
			t.Fatalf("Get(%s): %v", m.Name, err)
		}
		ins, err := l.Instances(m.Name)
		if err != nil || !reflect.DeepEqual(ins, e.Instances) || len(ins) != m.NumInstances {
			t.Fatalf("Instances(%s): %d instances, %v; manifest says %d", m.Name, len(ins), err, m.NumInstances)
		}
		sameExpert(t, e, synth(m.Name, small), false)
	}
	for n := range want {
		exp = append(exp, n)
	}
	sort.Strings(exp)
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("List: %v\nwant %v", got, exp)
	}
	for id := range dataIDs(t, l) {
		if !live[id] {
			t.Fatalf("orphan data under %s%s/", prefixData, id)
		}
	}
}

// TestCleanupKeepsLiveData: the cleanup of a failed Add never deletes data
// that the manifest names (a commit that errs may still land).
func TestCleanupKeepsLiveData(t *testing.T) {
	l := openMem(t)
	m, err := l.Add(synth("live", small))
	if err != nil {
		t.Fatal(err)
	}
	l.cleanup("live", m.ID)
	l.cleanup("gone", "0123456789abcdef0123456789abcdef")
	checkConsistent(t, l, map[string]bool{"live": true})
}
