package risk

// The replay's world (see replay_test.go): the cities users live in and
// travel to, the distances between them, and the browsers people use.

import "github.com/caddy-sessions/caddy-sessions/tracker/enrich"

type rCity struct {
	name, cc string
	lat, lon float64
	tz       int  // UTC offset, hours (standard time)
	weight   int  // weight as a home city
	exit     bool // a common VPN exit
}

var rCities = []rCity{
	// Europe
	{"London", "GB", 51.5074, -0.1278, 0, 12, true},
	{"Reading", "GB", 51.4543, -0.9781, 0, 1, false},
	{"Manchester", "GB", 53.4808, -2.2426, 0, 5, false},
	{"Liverpool", "GB", 53.4084, -2.9916, 0, 2, false},
	{"Birmingham", "GB", 52.4862, -1.8904, 0, 4, false},
	{"Edinburgh", "GB", 55.9533, -3.1883, 0, 2, false},
	{"Paris", "FR", 48.8566, 2.3522, 1, 10, true},
	{"Versailles", "FR", 48.8049, 2.1204, 1, 1, false},
	{"Lyon", "FR", 45.7640, 4.8357, 1, 3, false},
	{"Marseille", "FR", 43.2965, 5.3698, 1, 3, false},
	{"Lille", "FR", 50.6292, 3.0573, 1, 2, false},
	{"Annecy", "FR", 45.8992, 6.1294, 1, 1, false},
	{"Brussels", "BE", 50.8503, 4.3517, 1, 3, false},
	{"Kortrijk", "BE", 50.8280, 3.2649, 1, 1, false},
	{"Amsterdam", "NL", 52.3676, 4.9041, 1, 4, true},
	{"Utrecht", "NL", 52.0907, 5.1214, 1, 2, false},
	{"Berlin", "DE", 52.5200, 13.4050, 1, 7, false},
	{"Potsdam", "DE", 52.3906, 13.0645, 1, 1, false},
	{"Hamburg", "DE", 53.5511, 9.9937, 1, 4, false},
	{"Frankfurt", "DE", 50.1109, 8.6821, 1, 3, true},
	{"Mainz", "DE", 49.9929, 8.2473, 1, 1, false},
	{"Munich", "DE", 48.1351, 11.5820, 1, 5, false},
	{"Augsburg", "DE", 48.3705, 10.8978, 1, 1, false},
	{"Zurich", "CH", 47.3769, 8.5417, 1, 2, true},
	{"Geneva", "CH", 46.2044, 6.1432, 1, 2, false},
	{"Milan", "IT", 45.4642, 9.1900, 1, 4, false},
	{"Rome", "IT", 41.9028, 12.4964, 1, 4, false},
	{"Madrid", "ES", 40.4168, -3.7038, 1, 6, true},
	{"Alcalá de Henares", "ES", 40.4820, -3.3635, 1, 1, false},
	{"Barcelona", "ES", 41.3874, 2.1686, 1, 5, false},
	{"Copenhagen", "DK", 55.6761, 12.5683, 1, 3, false},
	{"Malmö", "SE", 55.6050, 13.0038, 1, 2, false},
	{"Gothenburg", "SE", 57.7089, 11.9746, 1, 2, false},
	{"Linköping", "SE", 58.4108, 15.6214, 1, 1, false},
	{"Norrköping", "SE", 58.5877, 16.1924, 1, 1, false},
	{"Stockholm", "SE", 59.3293, 18.0686, 1, 4, true},
	// North America
	{"New York", "US", 40.7128, -74.0060, -5, 12, true},
	{"Newark", "US", 40.7357, -74.1724, -5, 2, false},
	{"Philadelphia", "US", 39.9526, -75.1652, -5, 4, false},
	{"Washington", "US", 38.9072, -77.0369, -5, 4, false},
	{"Boston", "US", 42.3601, -71.0589, -5, 4, false},
	{"Chicago", "US", 41.8781, -87.6298, -6, 7, true},
	{"Naperville", "US", 41.7508, -88.1535, -6, 1, false},
	{"Detroit", "US", 42.3314, -83.0458, -5, 3, false},
	{"Windsor", "CA", 42.3149, -83.0364, -5, 1, false},
	{"Toronto", "CA", 43.6532, -79.3832, -5, 6, true},
	{"Montreal", "CA", 45.5017, -73.5673, -5, 4, false},
	{"Vancouver", "CA", 49.2827, -123.1207, -8, 3, false},
	{"Seattle", "US", 47.6062, -122.3321, -8, 5, true},
	{"Tacoma", "US", 47.2529, -122.4443, -8, 1, false},
	{"Portland", "US", 45.5152, -122.6784, -8, 2, false},
	{"San Francisco", "US", 37.7749, -122.4194, -8, 6, false},
	{"Oakland", "US", 37.8044, -122.2712, -8, 2, false},
	{"Los Angeles", "US", 34.0522, -118.2437, -8, 8, true},
	// Asia
	{"Tokyo", "JP", 35.6762, 139.6503, 9, 12, true},
	{"Yokohama", "JP", 35.4437, 139.6380, 9, 4, false},
	{"Nagoya", "JP", 35.1815, 136.9066, 9, 3, false},
	{"Kyoto", "JP", 35.0116, 135.7681, 9, 2, false},
	{"Osaka", "JP", 34.6937, 135.5023, 9, 6, false},
	{"Seoul", "KR", 37.5665, 126.9780, 9, 8, false},
	{"Incheon", "KR", 37.4563, 126.7052, 9, 2, false},
	{"Busan", "KR", 35.1796, 129.0756, 9, 3, false},
	{"Beijing", "CN", 39.9042, 116.4074, 8, 8, false},
	{"Tianjin", "CN", 39.3434, 117.3616, 8, 3, false},
	{"Shenyang", "CN", 41.8057, 123.4315, 8, 2, false},
	{"Changchun", "CN", 43.8171, 125.3235, 8, 2, false},
	{"Harbin", "CN", 45.8038, 126.5350, 8, 2, false},
	{"Shanghai", "CN", 31.2304, 121.4737, 8, 8, false},
	{"Shenzhen", "CN", 22.5431, 114.0579, 8, 4, false},
	{"Hong Kong", "HK", 22.3193, 114.1694, 8, 4, true},
	{"Singapore", "SG", 1.3521, 103.8198, 8, 5, true},
	{"Johor Bahru", "MY", 1.4927, 103.7414, 8, 2, false},
	{"Kuala Lumpur", "MY", 3.1390, 101.6869, 8, 3, false},
}

var rCountries = map[string]string{
	"GB": "United Kingdom", "FR": "France", "BE": "Belgium", "NL": "Netherlands", "DE": "Germany",
	"CH": "Switzerland", "IT": "Italy", "ES": "Spain", "DK": "Denmark", "SE": "Sweden",
	"US": "United States", "CA": "Canada", "JP": "Japan", "KR": "South Korea", "CN": "China",
	"HK": "Hong Kong", "SG": "Singapore", "MY": "Malaysia",
}

// rGeo is what the city table implies, computed once.
type rGeo struct {
	km     [][]float64
	near   [][]int // same country, within 60 km: carrier hubs, other ISP geolocations
	border [][]int // another country, within 60 km: commuting
	train  [][]int // 200-700 km
	far    [][]int // over 1000 km
	exits  []int
	homeW  []int
}

func newRGeo() *rGeo {
	n := len(rCities)
	g := &rGeo{km: make([][]float64, n), near: make([][]int, n), border: make([][]int, n), train: make([][]int, n), far: make([][]int, n)}
	for i, a := range rCities {
		g.km[i] = make([]float64, n)
		g.homeW = append(g.homeW, a.weight)
		if a.exit {
			g.exits = append(g.exits, i)
		}
		for j, b := range rCities {
			d := DistanceKm(a.lat, a.lon, b.lat, b.lon)
			g.km[i][j] = d
			switch {
			case i == j:
			case d <= 60 && a.cc == b.cc:
				g.near[i] = append(g.near[i], j)
			case d <= 60:
				g.border[i] = append(g.border[i], j)
			case d >= 200 && d <= 700 && rRegion(a.cc) == rRegion(b.cc):
				g.train[i] = append(g.train[i], j)
			case d > 1000:
				g.far[i] = append(g.far[i], j)
			}
		}
	}
	return g
}

// rRegion: countries a train (or a coach, or the car) links.
func rRegion(cc string) string {
	switch cc {
	case "US", "CA":
		return "NA"
	case "CN", "HK":
		return "CN"
	case "SG", "MY":
		return "SG"
	case "JP", "KR":
		return cc
	}
	return "EU"
}

type rAgent struct {
	a enrich.Agent
	w int
}

func rAg(browser, os, family, typ string) enrich.Agent {
	return enrich.Agent{Browser: browser, BrowserVersion: "125.0", OS: os, OSVersion: "14", DeviceFamily: family, DeviceType: typ}
}

var (
	rDesktop = []rAgent{
		{rAg("Chrome", "Windows", "Other", "desktop"), 45}, {rAg("Edge", "Windows", "Other", "desktop"), 15},
		{rAg("Safari", "Mac OS X", "Mac", "desktop"), 18}, {rAg("Chrome", "Mac OS X", "Mac", "desktop"), 12},
		{rAg("Firefox", "Windows", "Other", "desktop"), 7}, {rAg("Firefox", "Ubuntu", "Other", "desktop"), 3},
	}
	rMobile = []rAgent{
		{rAg("Mobile Safari", "iOS", "iPhone", "mobile"), 45}, {rAg("Chrome Mobile", "Android", "Samsung SM-S921B", "mobile"), 35},
		{rAg("Samsung Internet", "Android", "Samsung SM-A546B", "mobile"), 12}, {rAg("Chrome Mobile iOS", "iOS", "iPhone", "mobile"), 8},
	}
	rWork = []rAgent{{rAg("Chrome", "Windows", "Other", "desktop"), 60}, {rAg("Edge", "Windows", "Other", "desktop"), 40}}
)
