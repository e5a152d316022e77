package console

// chart is the data a uPlot chart is drawn from (static/console.js reads
// it from a JSON block next to the chart): shared x values in Unix seconds
// and one series per line.
type chart struct {
	// XLabel names the x axis in the legend.
	XLabel string   `json:"xlabel"`
	X      []int64  `json:"x"`
	Series []series `json:"series"`
	// Step is the width of one x step in seconds (bars and tooltips).
	Step int64 `json:"step"`
}

type series struct {
	Label  string  `json:"label"`
	Values []int64 `json:"values"`
	// Color is one of the palette's CSS colours.
	Color string `json:"color"`
}

// palette colours the series in order.
var palette = []string{"#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d"}

// pager is one page of a long list: which rows, and links to the others.
type pager struct {
	Page, Pages, Total int
	// First and Last number the rows shown (1-based; 0 when none).
	First, Last int
	Prev, Next  string
}

// paginate cuts total rows into pages of per and returns page n (clamped)
// with the bounds [lo, hi) of its rows; link builds a page's URL.
func paginate(total, n, per int, link func(page int) string) (pg pager, lo, hi int) {
	pages := max(1, (total+per-1)/per)
	n = min(max(n, 1), pages)
	lo, hi = (n-1)*per, min(n*per, total)
	pg = pager{Page: n, Pages: pages, Total: total}
	if hi > lo {
		pg.First, pg.Last = lo+1, hi
	}
	if n > 1 {
		pg.Prev = link(n - 1)
	}
	if n < pages {
		pg.Next = link(n + 1)
	}
	return pg, lo, hi
}
