"""Toil's ``toil.resource`` API, with Toil's names, signatures and behaviour, backed by Rust.

The classes are namedtuples, as Toil's are. What reads or sets the interpreter's own state
(``os.environ``, ``sys.modules``, ``sys.path``) is done here; packing, hashing, storing, fetching,
verifying and installing are done by the native module, which releases the GIL while it works.
"""

import importlib
import io
import logging
import os
import shutil
import sys
import tempfile
from collections import namedtuple
from contextlib import closing
from urllib.parse import urlsplit
from urllib.request import urlopen

from . import _native
from ._native import ResourceException

logger = logging.getLogger(__name__)

# Toil's seam on the worker: a URL we do not fetch ourselves, or any URL once this (or
# ``toil.resource.urlopen``) has been replaced, is fetched through it, called as Toil calls it.
_STANDARD_URLOPEN = urlopen

# The size of one read from a Python-fetched body into the spool file.
_SPOOL_CHUNK = 1 << 20

_INIT_FILES = ("__init__.py", "__init__.pyc", "__init__.pyo")


def _environment():
    """The process environment as pairs, for credentials and ``HOME``."""
    return list(os.environ.items())


def _exact_python():
    return "python%d.%d" % sys.version_info[:2]


def _replaced_urlopen():
    """The ``urlopen`` a caller put in place of the standard one, in ``toil.resource`` or here."""
    for name in ("toil.resource", __name__):
        module = sys.modules.get(name)
        opener = getattr(module, "urlopen", None) if module is not None else None
        if opener is not None and opener is not _STANDARD_URLOPEN:
            return opener
    return None


def _spool_body(content, spool):
    """Copy the body ``content`` (what ``urlopen`` returned) into ``spool``.

    A real stream (``http.client.HTTPResponse``, or the file behind ``urllib``'s ``addinfourl``
    for ``file:`` and ``ftp:``) is copied in chunks, in constant memory. Anything else is read
    as Toil reads it, with one ``read()``: Toil's own tests replace ``urlopen`` with a mock whose
    ``read`` returns the whole body whatever size is asked, which a chunked copy would repeat
    forever.
    """
    if isinstance(content, io.IOBase) or isinstance(getattr(content, "fp", None), io.IOBase):
        shutil.copyfileobj(content, spool, _SPOOL_CHUNK)
    else:
        spool.write(content.read())


# Toil's AWS and Google job stores keep their shared files at the root of bucket
# ``<name>--toil``.
_TOIL_BUCKET_SUFFIX = "--toil"

# The variables that say who a client is and where it talks to. For a Toil AWS job store its
# boto3 client has settled both; the process environment's own must not mix with them.
_AWS_IDENTITY_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
)


class _NativeTarget(
    namedtuple("_NativeTarget", ("locator", "environment", "endpoint", "jobStoreUrl"))
):
    """A store we write natively: our locator for it, the variables it is opened with, the
    endpoint of its service when that is not the provider's own, and whether the resource's
    URL is the job store object's ``getSharedPublicUrl`` rather than ours."""

    __slots__ = ()


def _native_locator(jobStore):
    """Where a job store object lives, when we write it natively, or None: it is then written
    through its own ``write_shared_file_stream``.

    A Toil ``FileJobStore`` is written in its directory, a Toil ``AWSJobStore`` in its bucket,
    through the credentials and the endpoint of the job store's own boto3 client, and a Toil
    ``GoogleJobStore`` in its bucket, through the credentials and the endpoint of its own
    google-cloud-storage client: we write exactly where that job store (and a Toil worker
    holding its URL) reads.
    """
    kind = type(jobStore).__name__
    directory = getattr(jobStore, "jobStoreDir", None)
    if kind == "FileJobStore" and isinstance(directory, str):
        return _NativeTarget(directory, _environment(), None, False)
    if kind == "AWSJobStore":
        return _aws_target(jobStore)
    if kind == "GoogleJobStore":
        return _google_target(jobStore)
    return None


def _aws_target(jobStore):
    """A Toil ``AWSJobStore`` as ``aws:REGION:NAME``, opened with its client's credentials and
    endpoint; None when the job store does not look as Toil 9's does, or its client signs
    nothing (then its own stream is the only way to write as it does)."""
    region = getattr(jobStore, "region", None)
    bucket = getattr(jobStore, "bucket_name", None)
    client = getattr(jobStore, "s3_client", None)
    if not (
        isinstance(region, str)
        and isinstance(bucket, str)
        and bucket.endswith(_TOIL_BUCKET_SUFFIX)
        and client is not None
    ):
        return None
    # botocore keeps a client's credentials on its request signer, where ``_get_credentials``
    # reads them; a client has no public accessor for them.
    get_credentials = getattr(client, "_get_credentials", None)
    credentials = get_credentials() if callable(get_credentials) else None
    if credentials is None:
        return None
    frozen = credentials.get_frozen_credentials()
    environment = [
        (name, value)
        for name, value in os.environ.items()
        if name not in _AWS_IDENTITY_VARIABLES and not name.startswith("AWS_ENDPOINT_URL")
    ]
    environment.append(("AWS_ACCESS_KEY_ID", frozen.access_key))
    environment.append(("AWS_SECRET_ACCESS_KEY", frozen.secret_key))
    if frozen.token:
        environment.append(("AWS_SESSION_TOKEN", frozen.token))
    name = bucket[: -len(_TOIL_BUCKET_SUFFIX)]
    return _NativeTarget(
        "aws:%s:%s" % (region, name), environment, _custom_endpoint(client), True
    )


def _custom_endpoint(client):
    """The endpoint of a boto3 client, unless it is one of Amazon's own: the S3 client derives
    those from the region itself."""
    endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None)
    if not isinstance(endpoint, str):
        return None
    host = urlsplit(endpoint).hostname or ""
    if host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn"):
        return None
    return endpoint


# The host of Google's own Cloud Storage endpoints (the JSON API's and its mTLS twin); a client
# talking to any other (an emulator, a private endpoint) names it to us.
_GOOGLE_API_DOMAIN = ".googleapis.com"


def _google_target(jobStore):
    """A Toil ``GoogleJobStore`` as ``google:PROJECT:NAME``, opened with a bearer token of its
    client's credentials and its client's endpoint; None when the job store does not look as
    Toil 9's does, or its credentials give no token (then its own stream is the only way to
    write as it does).

    The token is the one the job store's client sends itself, refreshed as that client would
    refresh it, so that any credentials Toil found (a service account, a user's
    application-default login, a VM's metadata server) write for us too without our reading
    them a second time. It is not refreshed during the upload: an access token lasts an hour
    and is refreshed here when it is due within minutes.
    """
    project = getattr(jobStore, "projectID", None)
    bucket = getattr(jobStore, "bucketName", None)
    client = getattr(jobStore, "storageClient", None)
    if not (
        (project is None or isinstance(project, str))
        and isinstance(bucket, str)
        and bucket.endswith(_TOIL_BUCKET_SUFFIX)
        and client is not None
    ):
        return None
    name = bucket[: -len(_TOIL_BUCKET_SUFFIX)]
    # google-cloud-core keeps a client's credentials in ``_credentials`` and
    # google-cloud-storage its endpoint on its connection; neither has a public accessor.
    credentials = getattr(client, "_credentials", None)
    endpoint = getattr(getattr(client, "_connection", None), "API_BASE_URL", None)
    if credentials is None or not isinstance(endpoint, str):
        return None
    environment = [
        (variable, value)
        for variable, value in os.environ.items()
        if not variable.startswith("GOOGLE_")
    ]
    identity = _google_identity(credentials)
    if identity is None:
        return None
    environment.append(identity)
    host = urlsplit(endpoint).hostname or ""
    custom = None if host.endswith(_GOOGLE_API_DOMAIN) else endpoint
    locator = "google:%s:%s" % (project, name) if project else "google:%s" % name
    return _NativeTarget(locator, environment, custom, True)


def _google_identity(credentials):
    """The setting our GCS client authenticates with, as the job store's client does: its
    bearer token, or no signature at all for anonymous credentials; None if neither applies."""
    # google-auth is there whenever a GoogleJobStore is: google-cloud-storage requires it.
    from google.auth.credentials import AnonymousCredentials
    from google.auth.transport.requests import Request

    if isinstance(credentials, AnonymousCredentials):
        return ("GOOGLE_SKIP_SIGNATURE", "true")
    if not credentials.valid:
        credentials.refresh(Request())
    token = getattr(credentials, "token", None)
    if not isinstance(token, str) or not token:
        return None
    return ("GOOGLE_BEARER_TOKEN", token)


class Resource(namedtuple("Resource", ("name", "pathHash", "url", "contentHash"))):
    """A file or directory deployed to each worker node before the user's jobs run.

    ``name`` is the base name of the leader path, ``pathHash`` the MD5 of that path, ``url``
    where the stored bytes are and ``contentHash`` their MD5. ``Resource.create`` picks the
    kind from the path; the subclasses force it.
    """

    __slots__ = ()

    resourceEnvNamePrefix = "JTRES_"

    rootDirPathEnvName = resourceEnvNamePrefix + "ROOT"

    # The kind a subclass stands for, by Toil's class name; None: detected from the path.
    _className = None

    @classmethod
    def create(cls, jobStore, leaderPath):
        """Store the file or directory at ``leaderPath`` in ``jobStore`` and return the resource.

        ``jobStore`` is one of our store locators (a directory, ``file:``, ``s3://``, ``gs://``,
        ``az://``, ``aws:REGION:NAME``, ``google:PROJECT:NAME``), a Toil ``FileJobStore``
        (written natively in its directory), a Toil ``AWSJobStore`` or ``GoogleJobStore``
        (written natively in its bucket, named by its ``getSharedPublicUrl``), or any other Toil
        job store, fed through its ``write_shared_file_stream`` and named by its
        ``getSharedPublicUrl``.
        """
        leaderPath = os.fspath(leaderPath)
        if hasattr(jobStore, "write_shared_file_stream"):
            target = _native_locator(jobStore)
        else:
            target = _NativeTarget(os.fspath(jobStore), _environment(), None, False)
        if target is not None:
            resource = _from_fields(
                _native.publish(
                    target.locator,
                    leaderPath,
                    cls._className,
                    target.environment,
                    target.endpoint,
                    # A URL of ours would be replaced by the job store's own: none is signed.
                    direct_url=target.jobStoreUrl,
                )
            )
            if target.jobStoreUrl:
                # The URL is the job store's own, as Toil's create hands out: the seam Toil's
                # tests mock, and the URL form a Toil worker of that job store expects.
                url = jobStore.getSharedPublicUrl(sharedFileName=resource.pathHash)
                resource = resource._replace(url=url)
            return resource
        pathHash = _native.path_hash(leaderPath)
        with jobStore.write_shared_file_stream(shared_file_name=pathHash, encrypted=False) as dst:
            className, name, pathHash, contentHash, _size = _native.write_content(
                leaderPath, dst, cls._className, os.environ.get("HOME")
            )
        url = jobStore.getSharedPublicUrl(sharedFileName=pathHash)
        return _CLASSES[className](name=name, pathHash=pathHash, url=url, contentHash=contentHash)

    def refresh(self, jobStore):
        """This resource with a fresh URL from ``jobStore`` (presigned URLs expire)."""
        # Positionally: Toil's job stores name this parameter differently (``shared_file_name``
        # in the abstract class and the file job store, ``file_id`` in the AWS one).
        return type(self)(
            name=self.name,
            pathHash=self.pathHash,
            url=jobStore.get_shared_public_url(self.pathHash),
            contentHash=self.contentHash,
        )

    @classmethod
    def prepareSystem(cls):
        """Prepare this node for downloading and looking up resources (worker only).

        Idempotent, not thread-safe: makes a root directory for local copies unless
        ``JTRES_ROOT`` names one, and sets ``JTRES_ROOT`` for child processes.
        """
        try:
            rootDirPath = os.environ[cls.rootDirPathEnvName]
        except KeyError:
            rootDirPath = tempfile.mkdtemp()
            os.environ[cls.rootDirPathEnvName] = rootDirPath
        if not os.path.isdir(rootDirPath):
            raise RuntimeError(
                "%s=%s: the root of local resource copies is not a directory"
                % (cls.rootDirPathEnvName, rootDirPath)
            )

    @classmethod
    def cleanSystem(cls):
        """Remove every local copy and every registered resource from the environment."""
        rootDirPath = os.environ.pop(cls.rootDirPathEnvName)
        shutil.rmtree(rootDirPath)
        for name in list(os.environ):
            if name.startswith(cls.resourceEnvNamePrefix):
                os.environ.pop(name)

    def register(self):
        """Register this resource for ``lookup()``, in this process and its children."""
        os.environ[self.resourceEnvNamePrefix + self.pathHash] = self.pickle()

    @classmethod
    def lookup(cls, leaderPath):
        """The resource registered for ``leaderPath`` on the leader, or None if there is none."""
        pathHash = _native.path_hash(os.fspath(leaderPath))
        value = os.environ.get(cls.resourceEnvNamePrefix + pathHash)
        if value is None:
            return None
        resource = cls.unpickle(value)
        if resource.pathHash != pathHash:
            raise RuntimeError(
                "%s%s holds a resource whose pathHash is %s, not the %s of %s"
                % (cls.resourceEnvNamePrefix, pathHash, resource.pathHash, pathHash, leaderPath)
            )
        return resource

    def download(self, callback=None):
        """Fetch, verify and install this resource under ``localDirPath`` unless it is there.

        ``callback``, if given, is called with the temporary directory before it is renamed into
        place, as Toil calls it. Only one process per node downloads; losing the rename to a
        process that does not take our locks is success.
        """
        self._install(callback=callback)

    def _install(self, callback=None, stash=None):
        rootDirPath = os.environ[self.rootDirPathEnvName]
        fields = (self._kindName(),) + tuple(self)
        environment = _environment()
        opener = _replaced_urlopen()
        if opener is None and _native.opens_natively(self.url, environment):
            return _native.install(fields, rootDirPath, environment, None, callback, stash)
        if opener is None:
            opener = _STANDARD_URLOPEN
        # Fetched through Python, as Toil fetches it, into a file beside the local copies, in
        # chunks (constant memory, whatever the size of the resource); verified and installed
        # from there.
        spool = tempfile.NamedTemporaryFile(
            dir=rootDirPath, prefix=".spool-%s-" % self.contentHash, delete=False
        )
        try:
            with spool:
                with closing(opener(self.url)) as content:
                    _spool_body(content, spool)
            return _native.install(fields, rootDirPath, environment, spool.name, callback, stash)
        finally:
            os.unlink(spool.name)

    @property
    def localPath(self):
        """The path of the resource on the worker (it exists once ``download()`` ran)."""
        raise NotImplementedError()

    @property
    def localDirPath(self):
        """The directory holding the resource on the worker: ``<JTRES_ROOT>/<contentHash>``."""
        return os.path.join(os.environ[self.rootDirPathEnvName], self.contentHash)

    def pickle(self):
        """Toil's wire form: ``toil.resource.<Class>:<JSON list of the four fields>``."""
        return _native.encode_wire(self._kindName(), *self)

    @classmethod
    def unpickle(cls, s):
        """The resource in Toil's wire form ``s`` (``ValueError`` if it is not one)."""
        className, name, pathHash, url, contentHash = _native.decode_wire(s)
        return _CLASSES[className](name, pathHash, url, contentHash)

    @classmethod
    def _pathHash(cls, path):
        return _native.path_hash(path)

    def _kindName(self):
        if self._className is None:
            raise ResourceException(
                "%r has no kind; make resources with Resource.create or a subclass" % (self,)
            )
        return self._className


class FileResource(Resource):
    """A resource read from a file on the leader."""

    __slots__ = ()
    _className = "FileResource"

    @property
    def localPath(self):
        return os.path.join(self.localDirPath, self.name)


class DirectoryResource(Resource):
    """A resource read from a directory on the leader, stored as a ZIP archive.

    A directory holding ``__init__.py`` is a package: its entries are named relative to its
    parent, so the package itself is unpacked.
    """

    __slots__ = ()
    _className = "DirectoryResource"

    @property
    def localPath(self):
        return self.localDirPath


class VirtualEnvResource(DirectoryResource):
    """A resource read from a virtualenv's ``site-packages`` on the leader."""

    __slots__ = ()
    _className = "VirtualEnvResource"


_CLASSES = {
    cls._className: cls for cls in (FileResource, DirectoryResource, VirtualEnvResource)
}


def _from_fields(fields):
    className, name, pathHash, url, contentHash = fields
    return _CLASSES[className](name=name, pathHash=pathHash, url=url, contentHash=contentHash)


def _in_virtual_env():
    return (
        "VIRTUAL_ENV" in os.environ
        or "CONDA_DEFAULT_ENV" in os.environ
        or hasattr(sys, "real_prefix")
        or (hasattr(sys, "base_prefix") and sys.base_prefix != sys.prefix)
    )


def _strict_bool(value):
    if value == "True":
        return True
    if value == "False":
        return False
    raise ValueError("fromVirtualEnv must be exactly True or False, not %r" % (value,))


class ModuleDescriptor(namedtuple("ModuleDescriptor", ("dirPath", "name", "fromVirtualEnv"))):
    """A Python module as (``dirPath`` to put on ``sys.path``, dotted ``name``,
    ``fromVirtualEnv``), shipped to workers as a resource."""

    __slots__ = ()

    @classmethod
    def forModule(cls, name):
        """The descriptor of the loaded module ``name``; ``__main__`` is the script or the module
        run with ``-m``, under its real name."""
        module = sys.modules[name]
        if getattr(module, "__file__", None) is None:
            raise ResourceException("Module %s does not exist (it has no file)." % name)
        fileAbsPath = os.path.abspath(module.__file__)
        filePath = fileAbsPath.split(os.path.sep)
        filePath[-1], extension = os.path.splitext(filePath[-1])
        if extension not in (".py", ".pyc"):
            raise ResourceException(
                "%s: The name of a user script/module must end in .py or .pyc." % fileAbsPath
            )
        if name == "__main__":
            if module.__package__:
                # Run as a module: python -m foo.bar
                nameList = [filePath.pop()]
                for package in reversed(module.__package__.split(".")):
                    cls._popPackage(filePath, package, fileAbsPath)
                    nameList.append(package)
                name = ".".join(reversed(nameList))
                dirPath = os.path.sep.join(filePath)
            else:
                # Run as a script: python foo/bar.py
                name = filePath.pop()
                dirPath = os.path.sep.join(filePath)
                cls._check_conflict(dirPath, name)
        else:
            if filePath[-1] == "__init__":
                filePath.pop()
            for package in reversed(name.split(".")):
                cls._popPackage(filePath, package, fileAbsPath)
            dirPath = os.path.abspath(os.path.sep.join(filePath))
        absPrefix = os.path.abspath(sys.prefix)
        if not os.path.isdir(dirPath):
            raise ResourceException(
                "Bad directory path %s for module %s: hot deployment needs the module's "
                "directory (scripts in the root directory and .egg-link installs cannot ship)"
                % (dirPath, name)
            )
        fromVirtualEnv = _in_virtual_env() and dirPath.startswith(absPrefix)
        return cls(dirPath=dirPath, name=name, fromVirtualEnv=fromVirtualEnv)

    @staticmethod
    def _popPackage(filePath, package, fileAbsPath):
        tail = filePath.pop() if filePath else ""
        if tail != package:
            raise RuntimeError(
                "Incorrect path to package: %s lies in %r where package %r was expected"
                % (fileAbsPath, tail, package)
            )

    @classmethod
    def _check_conflict(cls, dirPath, name):
        """Refuse a script whose name imports another module once its directory is off
        ``sys.path`` (a worker would import that one instead)."""
        old_sys_path = sys.path
        try:
            sys.path = [d for d in old_sys_path if os.path.realpath(d) != os.path.realpath(dirPath)]
            try:
                colliding = importlib.import_module(name)
            except ImportError:
                pass
            else:
                raise ResourceException(
                    "The user module '%s' collides with module '%s' from '%s'."
                    % (name, colliding.__name__, getattr(colliding, "__file__", "built-in"))
                )
        finally:
            sys.path = old_sys_path

    @property
    def belongsToToil(self):
        """True if this module is part of Toil."""
        return self.name.startswith("toil.")

    def saveAsResourceTo(self, jobStore):
        """Store this module's file, package or virtualenv as a resource in ``jobStore``."""
        path, className = _native.ship_plan(
            self.dirPath, self.name, self.fromVirtualEnv, _exact_python()
        )
        return _CLASSES[className].create(jobStore, path)

    def _getResourceClass(self):
        _path, className = _native.ship_plan(
            self.dirPath, self.name, self.fromVirtualEnv, _exact_python()
        )
        return _CLASSES[className]

    def localize(self):
        """This module pointing at its local copy, if it was saved as a resource (worker only);
        else the module itself."""
        if not self._runningOnWorker():
            logger.warning("The localize() method should only be invoked on a worker.")
        resource = Resource.lookup(self._resourcePath)
        if resource is None:
            return self
        resource._install(stash=(self.dirPath, bool(self.fromVirtualEnv)))
        return self.__class__(
            dirPath=resource.localDirPath, name=self.name, fromVirtualEnv=self.fromVirtualEnv
        )

    def _runningOnWorker(self):
        mainModule = sys.modules.get("__main__")
        if mainModule is None:
            logger.warning("Cannot determine main program module.")
            return False
        mainFile = getattr(mainModule, "__file__", None)
        if mainFile is None:
            return False
        return os.path.basename(mainFile) in ("worker.py", "worker.pyc", "worker.pyo", "_toil_worker")

    def globalize(self):
        """Undo ``localize()``: the module at its original place, read from ``.stash``."""
        stash = _native.read_stash(self.dirPath)
        if stash is None:
            return self
        dirPath, fromVirtualEnv = stash
        return self.__class__(dirPath=dirPath, name=self.name, fromVirtualEnv=fromVirtualEnv)

    @property
    def _resourcePath(self):
        """The leader path this module ships from, and its resource is registered under."""
        if not self.fromVirtualEnv and "." not in self.name:
            initName = self._initModuleName(self.dirPath)
            if initName:
                parent, package = os.path.split(self.dirPath)
                raise ResourceException(
                    "%s: Toil does not support loading a user script from a package directory "
                    "(it holds %s); run it as a module instead: PYTHONPATH=%s %s -m %s.%s"
                    % (self.dirPath, initName, parent, _exact_python(), package, self.name)
                )
        return _native.resource_path(self.dirPath, self.name, bool(self.fromVirtualEnv))

    @classmethod
    def _initModuleName(cls, dirPath):
        for name in _INIT_FILES:
            if os.path.exists(os.path.join(dirPath, name)):
                return name
        return None

    def _rootPackage(self):
        head, dot, _tail = self.name.partition(".")
        if not dot:
            raise ValueError("%r is stand-alone module." % (self,))
        return head

    def toCommand(self):
        """The three strings a worker's command line carries: dirPath, name, True|False."""
        return tuple(map(str, self))

    @classmethod
    def fromCommand(cls, command):
        """The descriptor from ``toCommand()``'s three strings."""
        if len(command) != 3:
            raise RuntimeError(
                "Incorrect number of arguments (expected 3: dirPath, name, True|False): %r"
                % (command,)
            )
        return cls(dirPath=command[0], name=command[1], fromVirtualEnv=_strict_bool(command[2]))

    def makeLoadable(self):
        """Localize the module unless it is Toil's, and put its directory on ``sys.path``."""
        module = self if self.belongsToToil else self.localize()
        if module.dirPath not in sys.path:
            sys.path.append(module.dirPath)
        return module

    def load(self):
        """Import the module, localized first."""
        module = self.makeLoadable()
        try:
            return importlib.import_module(module.name)
        except ImportError:
            logger.error("Failed to import user module %r from sys.path (%r).", module, sys.path)
            raise
