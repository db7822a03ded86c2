"""The book's chapters, and what each must build before it runs."""

from book import json_api

# chapter file name -> a function building everything it runs
BUILDS = {
    json_api.CHAPTER: json_api.build_all,
}
