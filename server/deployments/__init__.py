"""Deployments: publishing a static site (a build output or a static tree) to hosting.

`site.py` is what gets published; `targets/` holds one module per kind of hosting (S3 static
website, Netlify, Vercel, GitHub Pages), all behind the `DeployTarget` interface of
`targets/base.py`, so the deployment service drives them alike and more can be added.
"""
