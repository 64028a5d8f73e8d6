module github.com/densify-dev/azure-rest-api-token/ci/admission/testca

go 1.26.8
