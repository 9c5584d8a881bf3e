module github.com/scailabs/authzd/client

go 1.24

require github.com/go-chi/chi/v5 v5.5.0
