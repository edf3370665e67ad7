package server

// CORSConfig says which foreign origins may call the API from a browser.
type CORSConfig struct{}
