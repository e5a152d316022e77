package console

import "strconv"

// permissionSetKeys names the Official Account permission sets (权限集)
// by id, as WeChat's third-party platform documentation lists them
// (https://developers.weixin.qq.com/doc/oplatform/en/Third-party_Platforms/2.0/product/offical_account_authority.html);
// the names themselves are in the message catalogs. An id not listed is
// shown by number.
var permissionSetKeys = map[int]string{
	1: "set.1", 2: "set.2", 3: "set.3", 4: "set.4", 5: "set.5", 6: "set.6", 7: "set.7",
	8: "set.8", 9: "set.9", 10: "set.10", 11: "set.11", 12: "set.12", 13: "set.13", 15: "set.15",
}

// permissionSet is a granted set: its id and the catalog key of its name
// ("" when unnamed).
type permissionSet struct {
	ID  int
	Key string
}

func permissionSets(ids []int) []permissionSet {
	out := make([]permissionSet, len(ids))
	for i, id := range ids {
		out[i] = permissionSet{ID: id, Key: permissionSetKeys[id]}
	}
	return out
}

// Name is the set's name in the page's language, or "#id".
func (s permissionSet) Name(p *page) string {
	if s.Key == "" {
		return "#" + strconv.Itoa(s.ID)
	}
	return p.T(s.Key)
}
