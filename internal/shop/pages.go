package shop

import (
	"bytes"
	"html/template"
	"net/http"
)

// product is an item in the demo catalogue.
type product struct {
	ID          string
	Name        string
	Price       string
	Description string
}

// products is the fixed demo catalogue, served at /products/1..3.
var products = []product{
	{ID: "1", Name: "Espresso Cup", Price: "€9.90", Description: "A small porcelain cup for a strong start into the day."},
	{ID: "2", Name: "Pour-over Kettle", Price: "€39.00", Description: "Gooseneck kettle with a thermometer for precise brewing."},
	{ID: "3", Name: "Coffee Beans 1kg", Price: "€24.50", Description: "Medium roast, notes of chocolate and hazelnut."},
}

func productByID(id string) (product, bool) {
	for _, p := range products {
		if p.ID == id {
			return p, true
		}
	}
	return product{}, false
}

// pageData is the data passed to every page template.
type pageData struct {
	Title    string
	User     string
	LoggedIn bool
	Products []product
	Product  product
	Error    string
	Username string
	LoginAt  string
}

const layoutTmpl = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Demo Shop</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#222}
header{background:#2d3e50;color:#fff;padding:.8rem 1.5rem;display:flex;gap:1.2rem;align-items:center;flex-wrap:wrap}
header a{color:#fff;text-decoration:none}
header .brand{font-weight:700;font-size:1.1rem;margin-right:auto}
header .who{opacity:.85}
main{max-width:44rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.1)}
h1{margin-top:0;font-size:1.5rem}
ul.products{list-style:none;padding:0}
ul.products li{padding:.6rem 0;border-bottom:1px solid #eee;display:flex;justify-content:space-between}
.price{color:#2a7a3b;font-weight:600}
form.login label{display:block;margin:.6rem 0 .2rem}
form.login input{width:100%;padding:.45rem;box-sizing:border-box;border:1px solid #ccc;border-radius:4px}
button{margin-top:1rem;padding:.5rem 1.2rem;border:0;border-radius:4px;background:#2d3e50;color:#fff;cursor:pointer}
.error{background:#fdecea;color:#a61b1b;padding:.6rem .8rem;border-radius:4px}
.muted{color:#777;font-size:.9rem}
</style>
</head>
<body>
<header>
<a class="brand" href="/">Demo Shop</a>
<a href="/products/1">Products</a>
<a href="/account">Account</a>
<a href="/sessions/">Your sessions</a>
{{if .LoggedIn}}<span class="who">Signed in as <strong>{{.User}}</strong></span> <a href="/logout">Sign out</a>{{else}}<a href="/login">Sign in</a>{{end}}
</header>
<main>
{{template "content" .}}
</main>
</body>
</html>
`

const homeTmpl = `{{define "content"}}
<h1>Welcome to the Demo Shop</h1>
{{if .LoggedIn}}<p>Signed in as <strong>{{.User}}</strong>. <a href="/account">Go to your account</a>.</p>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>
{{else}}<p>You are browsing anonymously. <a href="/login">Sign in</a> to see your account.</p>{{end}}
<h2>Products</h2>
<ul class="products">
{{range .Products}}<li><a href="/products/{{.ID}}">{{.Name}}</a> <span class="price">{{.Price}}</span></li>
{{end}}</ul>
<p class="muted"><a href="/sessions/">Your sessions</a> · <a href="/logout">Sign out</a></p>
{{end}}`

const loginTmpl = `{{define "content"}}
<h1>Sign in</h1>
{{if .LoggedIn}}<p class="muted">You are currently signed in as <strong>{{.User}}</strong>.</p>{{end}}
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
<form class="login" method="post" action="/login">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" value="{{.Username}}" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p class="muted">Demo accounts: alice/alice, bob/bob, carol/carol.</p>
{{end}}`

const accountTmpl = `{{define "content"}}
<h1>Hello {{.User}}</h1>
<p>You signed in at <time>{{.LoginAt}}</time>.</p>
<p><a href="/sessions/">Your sessions</a> — see and revoke the devices you are signed in on.</p>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>
{{end}}`

const productTmpl = `{{define "content"}}
<h1>{{.Product.Name}}</h1>
<p class="price">{{.Product.Price}}</p>
<p>{{.Product.Description}}</p>
{{if .LoggedIn}}<p>Ready to order, <strong>{{.User}}</strong>?</p>{{else}}<p class="muted"><a href="/login">Sign in</a> to order.</p>{{end}}
<p><a href="/">Back to all products</a></p>
{{end}}`

const notFoundTmpl = `{{define "content"}}
<h1>Not found</h1>
<p>That page does not exist. <a href="/">Back to the shop</a>.</p>
{{end}}`

func mustPage(content string) *template.Template {
	t := template.Must(template.New("layout").Parse(layoutTmpl))
	return template.Must(t.Parse(content))
}

var (
	homePage     = mustPage(homeTmpl)
	loginPage    = mustPage(loginTmpl)
	accountPage  = mustPage(accountTmpl)
	productPage  = mustPage(productTmpl)
	notFoundPage = mustPage(notFoundTmpl)
)

// render executes t into a buffer first so that template errors turn into a
// clean 500 instead of a half-written page.
func (s *Shop) render(w http.ResponseWriter, status int, t *template.Template, data pageData) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
