package integrations

// idSet is a set of integration_records ids (a bigserial, so an
// integration's ids come in dense runs): a bitmap of 4,096 ids (512 bytes)
// for each run of 4,096 that holds one. A million records written in bulk
// take ~250 pages, ~130 KB; ids scattered one per 4,096 would cost 512 bytes
// each.
type idSet struct {
	pages map[int64]*[idSetPage / 64]uint64
}

const idSetPage = 4096

func newIDSet() *idSet { return &idSet{pages: map[int64]*[idSetPage / 64]uint64{}} }

func (s *idSet) at(id int64) (page int64, word int, bit uint64) {
	off := id & (idSetPage - 1) // ids are positive
	return id / idSetPage, int(off / 64), uint64(1) << (off % 64)
}

// add adds id and reports whether it was absent.
func (s *idSet) add(id int64) bool {
	page, word, bit := s.at(id)
	p := s.pages[page]
	if p == nil {
		p = new([idSetPage / 64]uint64)
		s.pages[page] = p
	}
	if p[word]&bit != 0 {
		return false
	}
	p[word] |= bit
	return true
}

// remove removes id and reports whether it was there.
func (s *idSet) remove(id int64) bool {
	page, word, bit := s.at(id)
	p := s.pages[page]
	if p == nil || p[word]&bit == 0 {
		return false
	}
	p[word] &^= bit
	return true
}

func (s *idSet) has(id int64) bool {
	page, word, bit := s.at(id)
	p := s.pages[page]
	return p != nil && p[word]&bit != 0
}
