"""Publishing: export to the serving artifact, scoring a version through the runners the
service uses, the publish policies, and handing the version to ``artifact`` to write.
"""
